"""vas_ros: evolved video architectures (TVN, EvaNet, AssembleNet) for ROS 2 robots."""

__version__ = '0.1.0'
