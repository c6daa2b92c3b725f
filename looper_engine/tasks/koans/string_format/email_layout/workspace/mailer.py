"""Render notification e-mails from templates with {placeholders}."""

import string

LAYOUT = "Hello {name},\n\n{content}\n\n-- The Shop team"


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def render(template: str, values: dict[str, object]) -> str:
    """Fill {name} placeholders; literal braces are written doubled ('{{', '}}')."""
    missing = placeholders(template) - values.keys()
    if missing:
        raise KeyError(f"missing values for: {', '.join(sorted(missing))}")
    return template.format(**values)


def render_email(body: str, values: dict[str, object], layout: str = LAYOUT) -> str:
    """The body rendered with `values`, wrapped in the layout (which may use them too)."""
    content = render(body, values)
    return render(layout.replace("{content}", content), values)
