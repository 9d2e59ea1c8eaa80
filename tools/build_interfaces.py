"""Generate vas_ros's ROS interfaces (msg/, action/) into a venv that holds the PyPI ROS 2 wheels,
so that the editable install (`pip install -e .`) imports them as `vas_ros.msg`.

`make venv` runs this; on a robot `colcon build` does the same from CMakeLists.txt. Here
it takes three repairs that a ROS install does not need:
- the wheels' exported CMake files name the include paths of the machine that built them
  (/opt/python/cp3XX-cp3XX/...); they are pointed at this interpreter's paths;
- the generated C libraries go into the venv's lib/, which the wheels' bootstrapper puts on
  LD_LIBRARY_PATH (rosidl's type support finds its libraries there by name, at run time);
- the generated Python modules go into <venv>/vas_ros_interfaces/python/vas_ros, which
  `vas_ros/__init__.py` adds to the package's __path__. On sys.path (or in site-packages)
  their empty __init__.py would shadow the editable install.

Run it again after changing msg/ or action/: it rebuilds what changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_DIR = 'vas_ros_interfaces/python'  # vas_ros/__init__.py looks here
_FOREIGN_PREFIX = re.compile(r'/opt/python/cp3\d+-cp3\d+')


def repair_exported_paths(prefix: Path) -> int:
    """Point the wheels' *Export.cmake files at this interpreter's Python and NumPy
    include directories; returns how many files changed (0 the second time)."""
    import numpy

    py_include = sysconfig.get_paths()['include']
    np_include = numpy.get_include()
    changed = 0
    for path in sorted((prefix / 'share').glob('*/cmake/*.cmake')):
        text = path.read_text()
        if '/opt/python/' not in text:
            continue
        fixed = re.sub(_FOREIGN_PREFIX.pattern + r'/lib/python3\.\d+/site-packages/numpy/'
                       r'_core/include', np_include, text)
        fixed = re.sub(_FOREIGN_PREFIX.pattern + r'/include/python3\.\d+', py_include, fixed)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    return changed


def build(prefix: Path, build_dir: Path, jobs: int = 2) -> Path:
    """Configure, build and install the interfaces into `prefix`; returns the directory
    that holds the generated `vas_ros` Python modules."""
    cmake = shutil.which('cmake')
    if cmake is None or shutil.which('c++') is None:
        sys.exit('build_interfaces: cmake and a C++ compiler are needed '
                 '(Debian: apt install cmake g++)')
    repair_exported_paths(prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix),
               PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}')
    env.pop('PYTHONPATH', None)
    configure = [cmake, '-S', str(ROOT), '-B', str(build_dir), '-DVAS_ROS_INTERFACES_ONLY=ON',
                 f'-DCMAKE_INSTALL_PREFIX={prefix}', f'-DPYTHON_INSTALL_DIR={PYTHON_DIR}',
                 f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF',
                 '-DCMAKE_BUILD_TYPE=Release']
    for step in (configure, [cmake, '--build', str(build_dir), '-j', str(jobs)],
                 [cmake, '--install', str(build_dir)]):
        proc = subprocess.run(step, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            sys.exit(f'build_interfaces: {" ".join(step[:3])} ... failed '
                     f'(exit {proc.returncode})')
    python_dir = prefix / PYTHON_DIR
    if not (python_dir / 'vas_ros' / 'msg' / '__init__.py').is_file():
        sys.exit(f'build_interfaces: nothing was generated under {python_dir}')
    return python_dir


def main() -> int:
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        sys.exit('build_interfaces: run it with the venv\'s python (make venv does)')
    python_dir = build(prefix, ROOT / 'build' / 'interfaces')
    print(f'vas_ros interfaces: generated into {python_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
