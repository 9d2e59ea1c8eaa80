"""Test and benchmark harnesses for the ROS nodes: not runtime nodes, and no node imports them.

- `probe`: the DDS probe (`Probe`, `start_node`, `stop_node`), a client with its own rclpy
  context that starts nodes as child processes, publishes frames, records topics, sets
  parameters and calls services and actions. The tests, `vas-ros demo` and the node
  benchmark drive the nodes through it.
- `node_bench`: the benchmark of `activity_recognizer` as deployed (frame delivery,
  end-to-end latency, overload, peak RSS); `vas-ros bench` runs its `run_node_bench` in a
  child process, and `python -m vas_ros.harness.node_bench --out DIR` runs it alone.

They sit above vas_ros.nodes (they start and talk to the nodes) and below the commands
that use them.
"""
