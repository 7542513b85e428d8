"""The data-vs-compute study and the "what would more data buy?" study of an upload.

    from aigc.study import run_grid, load_results, study_upload, fit_power_law

`aigc.study.cells` is the module that trains one cell; the list of a grid's cells is
`aigc.study.grid.cells` (a package attribute of that name would be replaced by the submodule).
"""
from aigc.study.grid import DEFAULT_SPEC, Cell, load_results, make_spec, merge_studies, plan, run_grid
from aigc.study.powerlaw import PowerLawFit, fit_power_law
from aigc.study.upload import study_upload

__all__ = ["DEFAULT_SPEC", "Cell", "load_results", "make_spec", "merge_studies", "plan", "run_grid",
           "PowerLawFit", "fit_power_law", "study_upload"]
