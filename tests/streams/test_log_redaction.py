"""A worker's log never shows a secret, whichever library logs it and however it is formatted."""

import logging

from streams.engine.worker import _redact_logs


def test_secrets_are_replaced_in_every_record(caplog):
    original = logging.getLogRecordFactory()
    try:
        _redact_logs(["hunter2-password", "tok-secret"])
        with caplog.at_level(logging.INFO):
            logging.getLogger("aiokafka").warning("connect failed for sasl %r", {"password": "hunter2-password"})
            logging.getLogger("faust").info("token tok-secret in a message")
            logging.getLogger("x").info("nothing to hide %d", 3)
        # A malformed call is left to the handler to report, as without redaction: no exception here.
        record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "bad %d", ("args",), None)
        assert record.msg == "bad %d"
    finally:
        logging.setLogRecordFactory(original)
    text = caplog.text
    assert "hunter2" not in text and "tok-secret" not in text
    assert "'password': '***'" in text and "token *** in a message" in text and "nothing to hide 3" in text
