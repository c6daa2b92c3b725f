import pytest

from mailer import render, render_email


def test_plain_email():
    email = render_email("Your order {order_id} has shipped.", {"name": "Bo", "order_id": 42})
    assert email == "Hello Bo,\n\nYour order 42 has shipped.\n\n-- The Shop team"


def test_literal_braces_in_body():
    body = 'Details: {{"order": {order_id}}}'
    assert render(body, {"order_id": 7}) == 'Details: {"order": 7}'
    email = render_email(body, {"name": "Bo", "order_id": 7})
    assert 'Details: {"order": 7}' in email


def test_braces_in_values():
    email = render_email("Welcome aboard, {name}!", {"name": "Ann {admin}"})
    assert email.startswith("Hello Ann {admin},\n\nWelcome aboard, Ann {admin}!")


def test_missing_value():
    with pytest.raises(KeyError, match="order_id"):
        render_email("Order {order_id}", {"name": "Bo"})
