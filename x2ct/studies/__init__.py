"""Studies: turn multirun folders into paper-style tables and plots."""
