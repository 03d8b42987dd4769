"""surefoot.http."""
