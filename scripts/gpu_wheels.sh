#!/usr/bin/env bash
# Fills .whl/ with the wheels that scripts/gpu_bench.sh installs on a lent GPU machine: our
# dependencies that its image lacks (it has jax 0.11.2 with CUDA, optax, chex, flax, numpy,
# scipy and the like), for CPython 3.12 on x86_64, pinned to the versions of the 2026-11-28
# lease (docs/BENCHMARKS.md, "On a GPU, third lease"). Run here, where pip reaches the
# registries; the GPU machine reaches none. .whl/ must be git-ignored (.git/info/exclude) and
# named in the device call's `carry`; about 42 MiB.
#
#   bash scripts/gpu_wheels.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
git check-ignore -q .whl/probe.whl || {
  echo "gpu_wheels.sh: .whl/ is not git-ignored; add '/.whl/' to .git/info/exclude first" >&2
  exit 2
}
WHEELS=(
  dm-haiku==0.0.17 jmp==0.0.4 rlax==0.1.9 distrax==0.1.9 tfp-nightly==0.26.0.dev20261027
  dm-tree==0.1.10 decorator==5.3.1 gast==0.7.0 gymnasium==1.4.0 farama-notifications==0.0.6
  brax==0.14.2 jaxopt==0.8.5 ml-collections==1.1.0 dm-env==1.6 tensorboardx==2.6.5
  flask==3.1.3 flask-cors==6.0.5 blinker==1.9.0 itsdangerous==2.2.0 trimesh==5.2.0
  mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 mujoco-mjx==3.17.0 glfw==2.11.0
  pyopengl==3.1.10 websockets==17.4
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl "${WHEELS[@]}"
echo "$(ls .whl/*.whl | wc -l) wheels in .whl/ ($(du -sh .whl | cut -f1))"
