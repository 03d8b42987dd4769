"""surefoot.logging."""
