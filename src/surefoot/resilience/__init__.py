"""surefoot.resilience."""
