"""pip setup for vas_ros: the library, the `vas-ros` command and the node executables,
without ROS's build (`make venv` installs it editable). On a robot, colcon builds the
package from CMakeLists.txt instead (ament_cmake: interfaces plus this library); these
data_files mirror what that install puts where `ros2 run` and `ros2 launch` look."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'vas_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['tests', 'tests.*']),
    package_data={package_name: ['shipped/*.safetensors', 'shipped/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='vas_ros developers',
    maintainer_email='dev@vas-ros.invalid',
    description='Evolved video architectures for ROS 2 robots.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'vas-ros = vas_ros.cli:main',
            'activity_node = vas_ros.nodes.activity_node:main',
            'search_node = vas_ros.nodes.search_node:main',
            'video_source = vas_ros.nodes.video_source:main',
        ],
    },
)
