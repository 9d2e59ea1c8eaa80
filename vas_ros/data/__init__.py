"""Video data for training, evaluation and the robot runtime.

Modules: `synth` (synthetic motion clips), `video_io` (PyAV read/write), `rosbag_source`
(rosbag2 image topics), `csv_source` (label CSVs), `datasets` (`open_dataset`,
`list_classes`, `ClipDataset`), `sampling` (which frames form a clip), `cache` (decoded
clips on disk), `flow` (OpenCV optical flow), `transforms` (`clip_to_inputs`, the one
preprocessing), `throughput` and `preview` (measurements and pictures). See docs/data.md.
"""
