"""Themes as files: TOML -> a validated pydantic model -> `textual.theme.Theme`.

Looper ships `looper-dark.toml` and `looper-light.toml` in `looper_tui/theme_files/` (package
data, so a wheel carries them); a user may add more under `<config dir>/themes/`. A file that
does not parse or names a colour Textual cannot read is reported (one line per file) and
skipped, so a bad theme never stops the lab.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme

#: The themes that ship with Looper: package data, so an installed wheel has them too.
SHIPPED_THEMES_DIR = Path(__file__).resolve().parent / "theme_files"
DEFAULT_THEME = "looper-dark"

#: Looper's own colour variables. TCSS and styled text use them as `$name`; a theme that
#: leaves one out (Textual's built-in themes, a user's minimal file) gets it derived from its
#: standard colours by `variable_defaults`.
LOOPER_VARIABLES: dict[str, str] = {
    "looper-tag": "accent",
    "looper-attr": "primary-lighten-1",
    "looper-reasoning": "foreground-muted",
    "looper-alarm": "error",
    "looper-scripted": "warning",
}


def variable_defaults(theme: Theme) -> dict[str, str]:
    system = theme.to_color_system().generate()
    return {name: system.get(source, system["foreground"]) for name, source in LOOPER_VARIABLES.items()}


_COLOUR_FIELDS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "warning",
    "error",
    "success",
)


def _check_colour(value: str) -> str:
    try:
        Color.parse(value)
    except ColorParseError as exc:
        raise ValueError(f"not a colour: {value!r}") from exc
    return value


class ThemeFile(BaseModel):
    """One theme file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    dark: bool = True
    primary: str
    secondary: str | None = None
    accent: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)

    @field_validator(*_COLOUR_FIELDS)
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return None if value is None else _check_colour(value)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for key, colour in value.items():
            if key in LOOPER_VARIABLES:
                _check_colour(colour)
        return value

    def to_theme(self) -> Theme:
        return Theme(
            name=self.name,
            dark=self.dark,
            variables=dict(self.variables),
            **{f: getattr(self, f) for f in _COLOUR_FIELDS},
        )


class ThemeProblem(BaseModel):
    path: Path
    message: str

    def line(self) -> str:
        return f"{self.path.name}: {self.message}"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def load_theme_file(path: Path) -> Theme:
    """Read one theme file. Raises ValueError with a one-line reason."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read it ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid TOML ({exc})") from exc
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as exc:
        raise ValueError(_first_error(exc)) from exc


def load_themes(folders: list[Path]) -> tuple[list[Theme], list[ThemeProblem]]:
    """Every `*.toml` theme in `folders` (later folders override earlier ones by name)."""
    themes: dict[str, Theme] = {}
    problems: list[ThemeProblem] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                problems.append(ThemeProblem(path=path, message=str(exc)))
                continue
            themes[theme.name] = theme
    return list(themes.values()), problems
