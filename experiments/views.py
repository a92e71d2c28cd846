"""The merchant's experiment screens: the list, the results page (with refresh, start, stop and roll
out), and the power / minimum-detectable-effect planner.

Views stay thin: who may see which merchant comes from the dashboard's access rule (managers and
platform admins; support agents are refused), reads from `selectors.screens`, writes from the
lifecycle, analysis and plan services. Every POST redirects (PRG) with a message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from revopt.dashboard.access import merchant_screen_access
from revopt.dashboard.selectors import DashboardAccess
from revopt.tenancy.models import Role

from .forms import PlanForm
from .metrics import METRICS, MetricKind
from .models import Experiment, ExperimentStatus
from .selectors.screens import experiment_get, experiment_list_rows, experiment_results, experiments_draft
from .services.analysis import ExperimentAnalysisError, experiment_analyze
from .services.lifecycle import (
    ExperimentValidationError,
    experiment_roll_out,
    experiment_start,
    experiment_stop,
)
from .services.plans import experiment_plan_save
from .stats.power import (
    minimum_detectable_effect,
    minimum_detectable_effect_for_proportion,
    sample_size_for_proportion,
    sample_size_per_variant,
)

ALLOWED_ROLES = (Role.MERCHANT_MANAGER, Role.PLATFORM_ADMIN)


def _access(request: HttpRequest) -> tuple[DashboardAccess | None, HttpResponse | None]:
    return merchant_screen_access(request, allowed_roles=ALLOWED_ROLES, forbidden_template="experiments/forbidden.html")


def _experiment(access: DashboardAccess, key: str) -> Experiment:
    try:
        return experiment_get(merchant=access.merchant, key=key)
    except Experiment.DoesNotExist as error:
        # Another shop's experiment is "not found", never "forbidden": its key is not ours to confirm.
        raise Http404("No such experiment") from error


def _merchant_query(access: DashboardAccess) -> str:
    return f"?merchant={access.merchant.slug}" if access.is_platform_admin else ""


def _results_redirect(access: DashboardAccess, experiment: Experiment) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("experiments:results", args=[experiment.key]) + _merchant_query(access))


def _refused(request: HttpRequest, error: ExperimentValidationError) -> None:
    messages.error(request, f"Nothing changed. {error.reason}")


@login_required
@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    return render(
        request,
        "experiments/list.html",
        {"access": access, "merchant": access.merchant, "rows": experiment_list_rows(merchant=access.merchant)},
    )


@login_required
@require_GET
def results(request: HttpRequest, key: str) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    experiment = _experiment(access, key)
    screen = experiment_results(merchant=access.merchant, experiment=experiment)
    return render(
        request,
        "experiments/results.html",
        {
            "access": access,
            "merchant": access.merchant,
            "experiment": experiment,
            "screen": screen,
            "analysis": screen.analysis,
            "merchant_query": _merchant_query(access),
        },
    )


@login_required
@require_POST
def refresh(request: HttpRequest, key: str) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    experiment = _experiment(access, key)
    if experiment.status == ExperimentStatus.DRAFT or experiment.started_at is None:
        messages.error(request, "A draft has no data to analyse yet: start it first.")
        return _results_redirect(access, experiment)
    try:
        analysis = experiment_analyze(experiment=experiment, save=True)
    except ExperimentAnalysisError as error:
        messages.error(request, f"The analysis could not run: {error}")
    else:
        messages.success(request, f"Analysis refreshed. {analysis.verdict_reason}")
    return _results_redirect(access, experiment)


def _transition(
    request: HttpRequest, key: str, change: Callable[..., Experiment], done: Callable[[Experiment], str]
) -> HttpResponse:
    """Run one lifecycle service (start, stop) on the experiment and come back to its results page."""
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    experiment = _experiment(access, key)
    try:
        change(experiment=experiment, actor=request.user)
    except ExperimentValidationError as error:
        _refused(request, error)
    else:
        messages.success(request, done(experiment))
    return _results_redirect(access, experiment)


@login_required
@require_POST
def start(request: HttpRequest, key: str) -> HttpResponse:
    return _transition(
        request, key, experiment_start, lambda experiment: f"{experiment.name} is running: shoppers are being assigned."
    )


@login_required
@require_POST
def stop(request: HttpRequest, key: str) -> HttpResponse:
    return _transition(
        request,
        key,
        experiment_stop,
        lambda experiment: (
            f"{experiment.name} is stopped: new shoppers get the shop's default until you roll a variant out."
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def roll_out(request: HttpRequest, key: str) -> HttpResponse:
    """GET asks for confirmation (what will change, for whom); POST rolls the variant out."""
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    experiment = _experiment(access, key)
    source = request.POST if request.method == "POST" else request.GET
    variant = next((item for item in experiment.variants.all() if item.key == source.get("variant", "")), None)
    if variant is None:
        messages.error(request, "Choose the variant to roll out.")
        return _results_redirect(access, experiment)
    if request.method == "GET":
        screen = experiment_results(merchant=access.merchant, experiment=experiment)
        return render(
            request,
            "experiments/roll_out_confirm.html",
            {
                "access": access,
                "merchant": access.merchant,
                "experiment": experiment,
                "variant": variant,
                "screen": screen,
                "primary": screen.analysis.metric(experiment.primary_metric, variant.key) if screen.analysis else None,
                "merchant_query": _merchant_query(access),
            },
        )
    try:
        experiment_roll_out(experiment=experiment, variant=variant, actor=request.user)
    except ExperimentValidationError as error:
        _refused(request, error)
    else:
        messages.success(request, f"{variant.name} is rolled out: every shopper now gets it.")
    return _results_redirect(access, experiment)


# --- the planner ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    solve_for: str
    units_per_variant: int
    variants: int
    relative_mde: float
    alpha: float
    power: float
    days: int | None  # at the daily traffic given, None without one

    @property
    def total_units(self) -> int:
        return self.units_per_variant * self.variants


# The power calculator names the argument at fault ("relative_mde: ..."); the form names its field.
_PLAN_FIELDS = {
    "baseline_rate": "baseline_rate",
    "baseline_mean": "baseline_mean",
    "baseline_sd": "baseline_sd",
    "relative_mde": "mde",
    "n_per_variant": "units_per_variant",
    "alpha": "alpha",
    "power": "power",
    "variants": "variants",
}


class PlanImpossible(ValueError):
    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _plan(data: dict) -> PlanResult:
    """Call the power calculator with the form's cleaned data (percentages turned into fractions).

    Raises PlanImpossible naming the form field when the calculator refuses the inputs."""
    alpha, power, variants = data["alpha"] / 100, data["power"] / 100, data["variants"]
    proportion = data["metric_kind"] == "proportion"
    rate = data["baseline_rate"] / 100 if proportion else None
    try:
        if data["solve_for"] == "sample_size":
            relative_mde = data["mde"] / 100
            if proportion:
                units = sample_size_for_proportion(
                    baseline_rate=rate, relative_mde=relative_mde, alpha=alpha, power=power, variants=variants
                )
            else:
                units = sample_size_per_variant(
                    baseline_mean=data["baseline_mean"],
                    baseline_sd=data["baseline_sd"],
                    relative_mde=relative_mde,
                    alpha=alpha,
                    power=power,
                    variants=variants,
                )
        else:
            units = data["units_per_variant"]
            if proportion:
                relative_mde = minimum_detectable_effect_for_proportion(
                    n_per_variant=units, baseline_rate=rate, alpha=alpha, power=power, variants=variants
                )
                if relative_mde is None:
                    raise PlanImpossible(
                        "units_per_variant", "Too few shoppers: not even a rate of 100% would be detected."
                    )
            else:
                relative_mde = minimum_detectable_effect(
                    n_per_variant=units,
                    baseline_mean=data["baseline_mean"],
                    baseline_sd=data["baseline_sd"],
                    alpha=alpha,
                    power=power,
                    variants=variants,
                )
    except PlanImpossible:
        raise
    except ValueError as error:
        name, _, reason = str(error).partition(": ")
        field = _PLAN_FIELDS.get(name)
        raise PlanImpossible(field, (reason or str(error)).capitalize() + ".") from error
    traffic = data.get("daily_traffic")
    return PlanResult(
        solve_for=data["solve_for"],
        units_per_variant=int(units),
        variants=variants,
        relative_mde=float(relative_mde),
        alpha=alpha,
        power=power,
        days=math.ceil(units * variants / traffic) if traffic else None,
    )


def _plan_initial(experiment: Experiment | None) -> dict:
    """A draft's own settings as the planner's starting point."""
    if experiment is None:
        return {}
    definition = METRICS.get(experiment.primary_metric)
    initial = {
        "metric_kind": "proportion" if definition and definition.kind == MetricKind.PROPORTION else "mean",
        "alpha": round(experiment.alpha * 100, 3),
        "power": round(experiment.power * 100, 3),
        "variants": max(2, len(experiment.variants.all())),
    }
    if experiment.minimum_detectable_effect:
        initial["mde"] = round(experiment.minimum_detectable_effect * 100, 3)
    return initial


@login_required
@require_http_methods(["GET", "POST"])
def plan(request: HttpRequest) -> HttpResponse:
    """GET computes (so a plan is a link to share); POST saves the plan onto the draft."""
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    experiment_key = (request.POST if request.method == "POST" else request.GET).get("experiment", "")
    experiment = _experiment(access, experiment_key) if experiment_key else None
    submitted = request.POST if request.method == "POST" else request.GET
    asked = request.method == "POST" or bool(set(request.GET) - {"experiment", "merchant"})
    form = PlanForm(submitted if asked else None, initial=_plan_initial(experiment))
    result = None
    if asked and form.is_valid():
        try:
            result = _plan(form.cleaned_data)
        except PlanImpossible as impossible:
            form.add_error(impossible.field, impossible.reason)
    if request.method == "POST" and result is not None and experiment is not None:
        try:
            experiment_plan_save(
                experiment=experiment,
                planned_sample_size=result.units_per_variant,
                minimum_detectable_effect=result.relative_mde,
                alpha=result.alpha,
                power=result.power,
                actor=request.user,
            )
        except ExperimentValidationError as error:
            _refused(request, error)
        else:
            messages.success(
                request,
                f"Plan saved on {experiment.name}: {result.units_per_variant:,} shoppers per variant "
                f"to detect {result.relative_mde:+.1%}.",
            )
        return _results_redirect(access, experiment)
    return render(
        request,
        "experiments/plan.html",
        {
            "access": access,
            "merchant": access.merchant,
            "form": form,
            "result": result,
            "experiment": experiment,
            "can_save": experiment is not None and experiment.status == ExperimentStatus.DRAFT,
            "drafts": experiments_draft(merchant=access.merchant) if experiment is None else [],
            "merchant_query": _merchant_query(access),
        },
        status=400 if request.method == "POST" and result is None else 200,
    )
