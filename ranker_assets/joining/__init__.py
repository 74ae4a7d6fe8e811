"""The Joiner: a day's logged features joined with its matured labels into training examples."""
