"""Realtime: the websocket endpoint, presence and cross-process fan-out.

Two layers: `presence` and `hub` sit below the roulette (it marks, reads
and publishes through them); `views`, the websocket endpoint, sits above
it. So this package imports none of them itself: create_app takes the
blueprint from `portal.realtime.views`.
"""
