"""The dominant Jacobian eigenvalue of every field of a trained model at the data, placed on
the stability region of the scheme of the field's step (``spectra``): the model-wide layer
over odenet.analysis.eigen (one field's Arnoldi estimate) and odenet.solvers' regions."""

from __future__ import annotations

import torch

from odenet.analysis.eigen import EigenConfig, field_eigenvalues, place_on_region
from odenet.analysis.inputs import Batch
from odenet.analysis.responses import _Recorder, model_fields


def spectra(model: torch.nn.Module, batches: list[Batch], config: EigenConfig) -> list[dict]:
    """Per field (network order): the dominant Jacobian eigenvalue at the data.

    Each field is linearised at the inputs it receives on the first ``config.images``
    samples; per sample the dominant eigenvalue (Im >= 0) is estimated, then averaged. Each
    entry: {"field", "scheme", "re", "im", "abs" (mean |z| over samples), "inside" (the mean z
    in the region of the field's step scheme; None without a region), "fraction_outside"
    (of the samples), "residual" (the largest relative residual of the samples' estimates),
    "unconverged" (samples whose estimate did not reach ``config.tol``; the mean is flagged
    wherever it is shown when this is nonzero), "cycles" (Arnoldi cycles run)}; re/im/abs
    (and the rest) are None for a field that changes the shape.
    """
    model.eval()
    fields = model_fields(model)
    inputs: dict[int, list[torch.Tensor]] = {f.index: [] for f in fields}
    seen = 0
    rec = _Recorder(fields)
    with torch.no_grad(), rec.attached():
        for x, _ in batches:
            if seen >= config.images:
                break
            take = min(config.images - seen, x.shape[0])
            model(x[:take])
            for f in fields:
                inputs[f.index].append(rec.inputs[f.index].detach())
            seen += take
    out = []
    for f in fields:
        x = torch.cat(inputs[f.index])
        found = field_eigenvalues(f.module, x, config)
        entry = {"field": f.name, "scheme": f.scheme}
        if found is None:
            out.append(
                {
                    **entry,
                    "re": None,
                    "im": None,
                    "abs": None,
                    "inside": None,
                    "fraction_outside": None,
                    "residual": None,
                    "unconverged": None,
                    "cycles": None,
                }
            )
            continue
        z = found.value
        mean = z.mean()
        kwargs = _scheme_kwargs(f)
        inside = place_on_region(f.scheme, mean.reshape(1), **kwargs)
        each = place_on_region(f.scheme, z, **kwargs)
        out.append(
            {
                **entry,
                "re": float(mean.real),
                "im": float(mean.imag),
                "abs": float(z.abs().mean()),
                "inside": None if inside is None else bool(inside[0]),
                "fraction_outside": None if each is None else float((~each).double().mean()),
                "residual": float(found.residual.max()),
                "unconverged": int((~found.converged).sum()),
                "cycles": found.cycles,
            }
        )
    return out


def _scheme_kwargs(f) -> dict:
    """LM-ResNet's region depends on the field's learned k (contracts.md #4: keyword k)."""
    coeffs = getattr(f.stage_module, "coefficients", None)
    if f.scheme == "lm" and coeffs is not None and f.position > 0:
        return {"k": float(coeffs.k[f.position - 1].detach())}
    return {}
