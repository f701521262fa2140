# `make demo` and `make test` set everything up on a fresh machine: system libraries (when missing and root),
# a virtual environment in .venv, the pinned Python packages (torch 2.13.0 CPU build from this machine's disk).
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
JOBS    ?= 2
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: demo test bench clean system-deps

demo: $(STAMP)
	$(PY) -m robot_rl.demo

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q

# Debian libraries the Python wheels expect: libusb for pyrealsense2, EGL/OSMesa for offscreen rendering.
system-deps:
	@missing=""; \
	for lib in libusb-1.0.so.0 libEGL.so.1 libEGL_mesa.so.0 libOSMesa.so; do \
	  ldconfig -p | grep -q "$$lib" || missing="$$missing $$lib"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing system libraries for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 >/dev/null; \
	  else \
	    echo "warning: missing$$missing; install libusb-1.0-0 libegl1 libegl-mesa0 libosmesa6"; \
	  fi; \
	fi

$(STAMP): setup.py setup.cfg constraints.txt | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[all,distributed,dev,realsense]"
	touch $(STAMP)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
