"""Invoices whose lines each have a tax category."""

from dataclasses import dataclass, field

from billing import TAX_RATES


@dataclass
class Line:
    description: str
    net: float
    category: str = "standard"

    @property
    def tax(self) -> float:
        try:
            rate = TAX_RATES[self.category]
        except KeyError:
            raise ValueError(f"unknown tax category {self.category!r}") from None
        return round(self.net * rate, 2)


@dataclass
class Invoice:
    number: str
    lines: list[Line] = field(default_factory=list)

    def add(self, description: str, net: float, category: str = "standard") -> None:
        self.lines.append(Line(description, net, category))

    @property
    def net_total(self) -> float:
        return round(sum(line.net for line in self.lines), 2)

    @property
    def tax_total(self) -> float:
        return round(sum(line.tax for line in self.lines), 2)

    @property
    def gross_total(self) -> float:
        return round(self.net_total + self.tax_total, 2)
