"""Training loop, evaluation and training curves (uses vas_ros.models and vas_ros.data)."""
