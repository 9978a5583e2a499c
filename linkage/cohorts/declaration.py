"""Cohort declarations: named criteria over the pseudonymised tables, a population, derived variables.

One YAML file per cohort in `cohorts.declarations` (the file name is the cohort name). The
model is deliberately small (after opensafely's ehrQL): a criterion is one table filtered by a
codelist and/or column values, inside a date window relative to the index date, aggregated per
person; the population combines criteria with all/any/not and an age range at the index date;
variables derive dates, flags and intervals from criteria and earlier variables.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from linkage import sources
from linkage.errors import ConfigError

# A registered source's pseudonymised activity table; where its events sit in time and what a codelist
# matches by default are part of the source's declaration (cohort_date_column, cohort_code_columns).
TableName = Annotated[str, BeforeValidator(sources.registered_table)]

_OFFSET = re.compile(r"^\s*([+-]?\d+)\s+(day|month|year)s?\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def parse_offset(text: str) -> tuple[int, str]:
    """'-12 months' -> (-12, 'month'): an offset from the index date."""
    match = _OFFSET.match(text)
    if not match:
        raise ValueError(f"offset {text} must look like '-12 months', '0 days' or '-5 years'")
    return int(match.group(1)), match.group(2)


class Window(Strict):
    """Event dates counted, relative to the index date: after `start` (QOF's "in the 12 months up to"),
    on or before `end`; no start = all history."""

    start: str | None = None
    end: str = "0 days"

    @field_validator("start", "end")
    @classmethod
    def _offset(cls, value: str | None) -> str | None:
        if value is not None:
            parse_offset(value)
        return value


class Criterion(Strict):
    """Events of one table matching a codelist and/or column values, aggregated per person."""

    table: TableName
    codelist: str | None = None
    code_columns: list[str] | None = Field(
        None,
        description="Columns the codelist is matched on (array columns match any element); this is the "
        "position rule: [primary_diagnosis] = primary only. Default per table.",
    )
    where: dict[str, list[Any]] = Field(default_factory=dict, description="column -> allowed values.")
    date_column: str | None = None
    window: Window = Window()
    aggregation: Literal["first", "last", "nth", "count", "exists"] = "exists"
    n: int = Field(1, ge=1, description="For aggregation nth: the n-th distinct event date.")
    ended_by: str | None = Field(
        None,
        description="Codelist whose latest event, if after the latest matching event, cancels the criterion.",
    )
    resolved_by: str | None = Field(None, description="Same as ended_by (QOF's word for registers).")

    @model_validator(mode="after")
    def _consistent(self) -> Criterion:
        if self.codelist is None and not self.where:
            raise ValueError("a criterion needs a codelist or a where filter")
        if self.ended_by and self.resolved_by:
            raise ValueError("give ended_by or resolved_by, not both")
        if self.ending_codelist and self.codelist is None:
            raise ValueError("ended_by/resolved_by need a codelist to compare with")
        if self.codelist and self.resolved_code_columns is None:
            raise ValueError(f"table {self.table} has no default code column: set code_columns")
        return self

    @property
    def ending_codelist(self) -> str | None:
        return self.ended_by or self.resolved_by

    @property
    def resolved_date_column(self) -> str:
        return self.date_column or sources.source_of_table(self.table).cohort_date_column

    @property
    def resolved_code_columns(self) -> list[str] | None:
        if self.code_columns is not None:
            return self.code_columns
        default = sources.source_of_table(self.table).cohort_code_columns
        return list(default) if default is not None else None

    @property
    def source(self) -> str:
        return sources.source_of_table(self.table).name

    @property
    def value_type(self) -> str:
        return {"count": "int", "exists": "boolean"}.get(self.aggregation, "date")


class Condition(Strict):
    """all / any / not over criterion names and nested conditions."""

    all: list[str | Condition] | None = None
    any: list[str | Condition] | None = None
    not_: str | Condition | None = Field(None, alias="not")

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        given = [kind for kind in ("all", "any", "not_") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError("a condition has exactly one of all, any, not")
        return self

    def names(self) -> set[str]:
        parts = self.all or self.any or [self.not_]
        found: set[str] = set()
        for part in parts:
            found |= {part} if isinstance(part, str) else part.names()
        return found


class AgeRange(Strict):
    """Completed years at the index date, inclusive."""

    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class Population(Strict):
    """Persons of the person table who meet the condition (if any) and the age range (if any)."""

    all: list[str | Condition] | None = None
    any: list[str | Condition] | None = None
    not_: str | Condition | None = Field(None, alias="not")
    age: AgeRange | None = None

    @property
    def condition(self) -> Condition | None:
        kinds = {k: getattr(self, k) for k in ("all", "any", "not_") if getattr(self, k) is not None}
        if not kinds:
            return None
        if len(kinds) > 1:
            raise ValueError("population has at most one of all, any, not (nest the others)")
        return Condition.model_validate({("not" if k == "not_" else k): v for k, v in kinds.items()})


class Variable(Strict):
    """Exactly one derivation: a criterion's value or flag, earliest/latest of dates, an interval, a by-age flag."""

    value_of: str | None = None
    has: str | None = Field(None, description="A criterion: flag, true when the person meets it.")
    earliest_of: list[str] | None = None
    latest_of: list[str] | None = None
    days_between: list[str] | None = Field(
        None, min_length=2, max_length=2, description="[from, to]: days from the first date to the second."
    )
    at_most: int | None = Field(
        None, description="With days_between: a flag, true when the interval <= at_most."
    )
    by_age: str | None = Field(
        None, description="A date variable/criterion: flag, given before the age in years."
    )
    years: int | None = Field(None, ge=0, description="With by_age: the age.")
    description: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> Variable:
        kinds = [
            k
            for k in ("value_of", "has", "earliest_of", "latest_of", "days_between", "by_age")
            if getattr(self, k)
        ]
        if len(kinds) != 1:
            raise ValueError(
                "a variable has exactly one of value_of, has, earliest_of, latest_of, days_between, by_age"
            )
        if self.at_most is not None and self.days_between is None:
            raise ValueError("at_most goes with days_between")
        if (self.years is None) != (self.by_age is None):
            raise ValueError("by_age and years go together")
        return self

    def references(self) -> list[str]:
        return [
            *(self.earliest_of or []),
            *(self.latest_of or []),
            *(self.days_between or []),
            *[name for name in (self.value_of, self.has, self.by_age) if name],
        ]


class TruthCheck(Strict):
    """Which truth condition a cohort is checked against, and which flag (default: membership) predicts it."""

    condition: str
    variable: str | None = None
    population_only: bool = Field(
        False,
        description="Count truth only for true persons in the cohort's population "
        "(for flags whose truth also lists people outside it).",
    )


class Declaration(Strict):
    name: str
    description: str
    index_date: date | None = None
    criteria: dict[str, Criterion]
    population: Population
    variables: dict[str, Variable] = Field(default_factory=dict)
    truth: list[TruthCheck] | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> Declaration:
        for name in [self.name, *self.criteria, *self.variables]:
            if not _NAME.match(name):
                raise ValueError(f"name {name} must be lower case letters, digits and _")
        clash = set(self.criteria) & set(self.variables)
        if clash:
            raise ValueError(f"criteria and variables share names: {sorted(clash)}")
        condition = self.population.condition
        unknown = (condition.names() if condition else set()) - set(self.criteria)
        if unknown:
            raise ValueError(f"population names unknown criteria: {sorted(unknown)}")
        known = set(self.criteria)
        for name, variable in self.variables.items():
            missing = [ref for ref in variable.references() if ref not in known]
            if missing:
                raise ValueError(f"variable {name} refers to unknown or later names: {missing}")
            if variable.has and variable.has not in self.criteria:
                raise ValueError(f"variable {name}: has names {variable.has}, which is not a criterion")
            known.add(name)
        for check in self.truth or []:
            if check.variable and check.variable not in self.variables:
                raise ValueError(f"truth check names unknown variable {check.variable}")
        return self

    @property
    def truth_checks(self) -> list[TruthCheck]:
        return self.truth if self.truth is not None else [TruthCheck(condition=self.name)]


def load_declaration(path: Path) -> Declaration:
    """Parse one cohort YAML file; errors name the file and the key, never data."""
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read cohort declaration ({type(error).__name__})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a cohort declaration is a mapping")
    try:
        return Declaration.model_validate({"name": path.stem, **content})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg'].removeprefix('Value error, ')}"
            for item in error.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


def declaration_files(folder: str | Path) -> dict[str, Path]:
    """Cohort name -> its YAML file, sorted by name."""
    directory = Path(folder)
    if not directory.is_dir():
        raise ConfigError(f"cohorts.declarations: folder {directory} not found")
    return {path.stem: path for path in sorted(directory.glob("*.yaml"))}
