"""The whole pipeline on one Spark session under one MLflow parent run.

ingest -> train (only when no model is approved) -> link -> pseudonymise -> cohorts. Each stage
is the same library function its own job calls, in a nested MLflow run. A stage that fails
stops the pipeline; every table it did not get to keeps its last good version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linkage.config import AppConfig
from linkage.errors import ConfigError, InputError
from linkage.harness import JobContext, Stage, StageClock, StageResult
from linkage.tracking import tracking_run


def ensure_extract(ctx: JobContext) -> AppConfig:
    """Generate a synthetic extract only in local mode into a folder holding no extract at all.

    The expected file names are `ingest.sources`' people_file / activity_file. A folder holding
    some but not all of them is an incomplete real extract: InputError naming the missing files,
    and nothing in the folder changes. Returns the config to run with: truth files that stand
    beside the extract (the generator writes them there) switch the QA metrics on unless
    paths.truth / paths.truth_conditions name other files.
    """
    config = ctx.config
    raw = Path(config.paths.raw)
    if "://" in config.paths.raw:
        return config
    check_extract_or_generate(ctx, config, raw)
    found = {
        name: str(raw / f"{name}.csv")
        for name in ("truth", "truth_conditions")
        if getattr(config.paths, name) is None and (raw / f"{name}.csv").exists()
    }
    if found:
        ctx.say(f"using the truth files beside the extract for QA: {', '.join(sorted(found))}")
    return config.model_copy(update={"paths": config.paths.model_copy(update=found)})


def check_extract_or_generate(ctx: JobContext, config: AppConfig, raw: Path) -> None:
    """Return when ingest.sources' files are all in `raw`; generate them when allowed; else InputError."""
    from linkage.synthetic import (
        FILES,
        SYNTHETIC_MARKER,
        extract_files_found,
        extract_stems,
        generate_extract,
        generated_file_names,
    )

    found = extract_files_found(raw, extract_stems(config.ingest.sources))
    missing = [f"{stem}.csv" for stem, files in found.items() if not files]
    if not missing:
        return
    if len(missing) < len(found):
        raise InputError(
            f"{raw}: incomplete extract, missing {', '.join(missing)} (file names from "
            f"ingest.sources; .csv or .parquet); nothing was generated or changed"
        )
    if config.environment != "local":
        raise InputError(
            f"{raw}: no extract files (expected {', '.join(missing)}); synthetic data is generated "
            f"only when environment is local (this run: {config.environment})"
        )
    in_the_way = (
        []
        if (raw / SYNTHETIC_MARKER).exists()
        else sorted(name for name in generated_file_names() if (raw / name).exists())
    )
    if in_the_way or sorted(found) != sorted(name for pair in FILES.values() for name in pair):
        raise InputError(
            f"{raw}: holds no extract, but a synthetic one would not match ingest.sources or would "
            f"replace {', '.join(in_the_way) or 'nothing'}: point paths.raw at an empty folder"
        )
    with ctx.stage("generate synthetic extract"):
        counts = generate_extract(config.synthetic, raw, Path(config.cohorts.codelists))
    ctx.say(
        f"no extract in {raw}: generated a synthetic one ({config.synthetic.people} people, "
        f"{sum(counts.values())} rows in {len(counts)} files)"
    )


def run_stage(ctx: JobContext, config: AppConfig, name: str, body: Stage) -> StageResult:
    """Run one stage as its own nested MLflow run, sharing the pipeline's session; its failures are returned."""
    with ctx.stage(name), tracking_run(config, job=name) as run:
        stage_ctx = JobContext(
            job=name,
            args=ctx.args,
            config=config,
            environ=ctx.environ,
            clock=StageClock(name),
            spark=ctx.spark,
            run=run,
        )
        result = body(stage_ctx)
        run.log_metrics(result.run_metrics(stage_ctx.clock))
    return result


def ensure_approved_model(ctx: JobContext, config: AppConfig) -> dict[str, Any]:
    """Train only when no model version is approved; in local mode approve what was trained."""
    from linkage.link import approve_model, approved_version
    from linkage.train import stage as train

    version = config.linkage.model_version or approved_version(config)
    if version is not None:
        ctx.say(f"using approved model version {version} of '{config.tracking.registered_model}'")
        return {"model_version": version, "trained": False}
    if config.environment != "local":
        raise ConfigError(
            f"no approved version of model '{config.tracking.registered_model}': run `python -m jobs.train`, "
            f"review the run in MLflow, then `python -m jobs.approve --version N`"
        )
    result = run_stage(ctx, config, "train", train.run).summary
    version = str(result["model_version"])
    approve_model(config, version, ctx.environ, how="automatic (local mode pipeline)")
    ctx.say(
        f"local mode: trained model version {version} and approved it (alias "
        f"'{config.tracking.approved_alias}'); outside local mode QA approves with `python -m jobs.approve`"
    )
    return {**result, "trained": True}


def run(ctx: JobContext) -> StageResult:
    """Every stage in turn; summary {stage: its summary}; a failed cohort is the pipeline's failure."""
    from linkage.cohorts import stage as cohorts
    from linkage.ingest import stage as ingest
    from linkage.link import stage as link
    from linkage.pseudonymise import stage as pseudonymise

    config = ensure_extract(ctx)
    stages: dict[str, StageResult] = {}
    results: dict[str, dict[str, Any]] = {}
    stages["ingest"] = run_stage(ctx, config, "ingest", ingest.run)
    results["ingest"] = dict(stages["ingest"].summary)
    results["model"] = ensure_approved_model(ctx, config)
    for name, stage in (("link", link), ("pseudonymise", pseudonymise), ("cohorts", cohorts)):
        stages[name] = run_stage(ctx, config, name, stage.run)
        results[name] = dict(stages[name].summary)
    ctx.run.log_dict(_jsonable(results), "pipeline_summary.json")
    ctx.run.log_metrics(_numeric_leaves(results))
    for line in summary_lines(config, results):
        ctx.say(line)
    failed = results["cohorts"].get("failed") or []
    return StageResult(
        tables={table: write for result in stages.values() for table, write in result.tables.items()},
        summary=results,
        failures=(f"cohorts failed: {', '.join(failed)} (the other stages and cohorts completed)",)
        if failed
        else (),
    )


def summary_lines(config: AppConfig, results: dict[str, dict[str, Any]]) -> list[str]:
    lake = config.paths.lake
    lines = ["---- summary ----"]
    for stage, result in results.items():
        numbers = _numeric_leaves({stage: result})
        shown = ", ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in list(numbers.items())[:12])
        lines.append(f"{stage:<13} {shown}")
    f1 = _numeric_leaves(results.get("link", {})).get("f1")
    if f1 is not None:
        lines.append(f"linkage F1 against truth: {f1:.4f}")
    lines.append(f"tables: {lake}/restricted, {lake}/pseudonymised, {lake}/cohorts (Delta)")
    lines.append(f"shareable summaries: {config.paths.exports_dir}")
    lines.append(
        f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {config.tracking_uri_shown} --host 127.0.0.1 --port 5000"
        " then open http://127.0.0.1:5000"
    )
    return lines


def _fmt(value: float) -> str:
    return f"{value:.4f}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"


def _numeric_leaves(data: Any, prefix: str = "") -> dict[str, float]:
    leaves: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            leaves.update(_numeric_leaves(value, f"{prefix}{key}."))
    elif isinstance(data, bool):
        pass
    elif isinstance(data, int | float):
        leaves[prefix.rstrip(".")] = float(data)
    return leaves


def _jsonable(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(k): _jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_jsonable(v) for v in data]
    if isinstance(data, str | int | float | bool) or data is None:
        return data
    return str(data)
