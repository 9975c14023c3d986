"""The lead roulette: routing, offers and the agent's presence switch.

A one-way stack (each module imports only those listed before it; the
README's layout section says what each keeps): choice, lease, pool, push,
placement, routing, endings, switch, decisions, sweep, router, views.
This package imports none of them itself, so importing a low one never
loads the high ones: create_app takes the blueprint from
`portal.roulette.views`.
"""
