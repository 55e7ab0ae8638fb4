# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
DEMO := .demo
# The bundled sample releases are dated 2024: without this, every demo command would warn
# that the newest release is stale (which is right, but not what the demo is about).
VR := VARREINTERP_STALE_AFTER_DAYS=100000 $(BIN)/varreinterp --store $(DEMO)/store
OLD := clinvar-GRCh38-2024-01-07

.PHONY: demo test lint bench clean venv

venv: $(DEV_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo needs the runtime dependencies only; the tests add the dev tools. Each
# reinstalls when the project's metadata or the compiled scanner's source changes.
BUILD_INPUTS := pyproject.toml setup.py varreinterp/_vcfscan.c
$(RUN_STAMP): $(BUILD_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): $(BUILD_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(RUN_STAMP) $(DEV_STAMP)

# The main job on the bundled sample_vcfs/: two releases, four patients reported against the
# older one, the nightly reanalysis to the newer one, and a counselor's report.
demo: $(RUN_STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(VR) snapshot add sample_vcfs/clinvar_GRCh38_2024-01-07.vcf
	$(VR) cohort add sample_vcfs/patient_single.vcf.gz sample_vcfs/trio.vcf --baseline $(OLD)
	$(VR) snapshot add sample_vcfs/clinvar_GRCh38_2024-06-02.vcf
	$(VR) snapshot list --format table
	$(VR) cohort status --format table
	$(VR) reanalyze --exit-code --format table -o '$(DEMO)/reports/{date}-{run_id}' \
		|| test $$? -eq 1  # 1: changes were delivered
	$(VR) report sample_vcfs/trio.vcf --sample CHILD01 --from $(OLD) -o $(DEMO)/CHILD01.html
	$(VR) history sample_vcfs/patient_single.vcf.gz --format table
	@echo "demo: report folder under $(DEMO)/reports/, counselor's report $(DEMO)/CHILD01.html"

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

lint: $(DEV_STAMP)
	$(BIN)/ruff check varreinterp tests bench sample_vcfs
	$(BIN)/mypy varreinterp

bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(DEMO) .bench build *.egg-info varreinterp/*.so
