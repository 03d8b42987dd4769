"""surefoot.health."""
