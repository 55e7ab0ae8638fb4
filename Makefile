# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STORE := .demo/store
VR := $(BIN)/varreinterp --store $(DEMO_STORE)

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf .demo && mkdir -p .demo
	$(VR) snapshot add sample_vcfs/clinvar_GRCh38_2024-01-07.vcf
	$(VR) snapshot add sample_vcfs/clinvar_GRCh38_2024-06-02.vcf
	$(VR) snapshot list --format table
	$(VR) snapshot show clinvar-GRCh38-2024-06-02 --format table
	$(VR) annotate sample_vcfs/patient_single.vcf.gz --snapshot clinvar-GRCh38-2024-01-07 --format table
	$(VR) diff sample_vcfs/patient_single.vcf.gz --from clinvar-GRCh38-2024-01-07 --to clinvar-GRCh38-2024-06-02 --format table

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check varreinterp tests bench sample_vcfs
	$(BIN)/mypy varreinterp

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .demo .bench build *.egg-info
