# Kiln's Blender side: the extension zip, the headless demo, the panel screenshot.
# Included by the top-level Makefile (which defines VENV, VPY and the setup target).

KILN_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' blender_manifest.toml)
KILN_ZIP     := dist/kiln-$(KILN_VERSION).zip
# Blender's own extension builder, shipped inside the bpy wheel; found when used
# (recursive '=' so a fresh clone finds it after `setup` created .venv).
BLENDER_EXT   = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py))
KILN_SOURCES := blender_manifest.toml __init__.py preferences.py props.py requirements.txt \
                $(wildcard runtime/*.py operators/*.py panels/*.py engine/*.py engine/*/*.py \
                           engine/*/*/*.py) \
                $(wildcard weights/*/*)

.PHONY: extension demo screenshot

extension: $(KILN_ZIP)

$(KILN_ZIP): $(KILN_SOURCES) | setup
	@test -n "$(BLENDER_EXT)" || { echo "blender_ext.py not found in $(VENV) (bpy missing?)"; exit 1; }
	mkdir -p dist
	rm -f $@
	$(VPY) $(BLENDER_EXT) build --source-dir . --output-dir dist
	$(VPY) $(BLENDER_EXT) validate $@

# Headless Blender (bpy) installs the zip as a user would and generates with the
# bundled model: out/demo.blend, out/demo.glb (+ demo.json), out/demo.png (Cycles CPU).
demo: $(KILN_ZIP) | setup
	$(VPY) scripts/demo.py --zip $(KILN_ZIP) --out out

# docs/panel.png: the Kiln sidebar in Debian's Blender (legacy add-on) under Xvfb.
# Needs `blender xvfb xauth` (make system-deps); shows out/demo.glb when it exists.
screenshot: $(KILN_ZIP)
	rm -rf out/screenshot && mkdir -p out/screenshot/scripts/addons/kiln docs
	$(VPY) -m zipfile -e $(KILN_ZIP) out/screenshot/scripts/addons/kiln
	BLENDER_USER_SCRIPTS=$(CURDIR)/out/screenshot/scripts BLENDER_USER_CONFIG=$(CURDIR)/out/screenshot/config \
	BLENDER_USER_DATAFILES=$(CURDIR)/out/screenshot/datafiles \
	KILN_PYTHON=$(CURDIR)/$(VPY) xvfb-run -a -s "-screen 0 1280x900x24" blender --factory-startup -noaudio \
	  --enable-event-simulate --python tests/blender/panel_window.py -- \
	  $(CURDIR)/docs/panel.png $(CURDIR)/out/screenshot/report.json \
	  $(if $(wildcard out/demo.glb),--glb $(CURDIR)/out/demo.glb)
	cat out/screenshot/report.json
