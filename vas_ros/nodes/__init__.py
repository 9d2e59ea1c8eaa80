"""rclpy nodes: thin wrappers around vas_ros.perception and the search CLI."""
