"""An alert storm over HTTP: subscribers get the first alerts and one summary, not a flood."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from tests.integration.pipeline_kit import ACCOUNT, REGION, open_pipeline, write_config
from veilleur.model import format_time

RULES = """
- id: bucket-deleted
  title: S3 bucket deleted
  severity: high
  description: Every DeleteBucket, one alert each (no threshold, no realert).
  match: {eventSource: [s3.amazonaws.com], eventName: [DeleteBucket]}
"""


def delete_bucket(t, n: int) -> dict:
    return {
        "eventVersion": "1.08",
        "eventID": f"delete-bucket-{n}",
        "eventTime": format_time(t),
        "eventSource": "s3.amazonaws.com",
        "eventName": "DeleteBucket",
        "awsRegion": REGION,
        "recipientAccountId": ACCOUNT,
        "sourceIPAddress": "198.51.100.23",
        "userIdentity": {"type": "IAMUser", "userName": "mallory"},
        "requestParameters": {"bucketName": f"logs-{n}"},
        "readOnly": False,
    }


def test_a_storm_of_sixty_alerts_reaches_subscribers_as_ten_and_one_summary(
    tmp_path: Path, clock, emulator, sns_topic_to_queue, bus_rule_to_queue, receive_until
) -> None:
    (tmp_path / "storm-rules.yaml").write_text(RULES)
    topic = sns_topic_to_queue("t")
    bus = bus_rule_to_queue("b")
    cfg = write_config(tmp_path, topic.topic_arn, bus.bus_name, ["storm-rules.yaml"])
    p = open_pipeline(cfg, clock)
    t0 = clock.now()
    emulator.add_events([delete_bucket(t0 + timedelta(seconds=i), i) for i in range(60)], delay=30)
    p.run_for(8 * 60)  # past the 5-minute window, when the summary goes out

    for queue, body_of in (
        (topic.queue_url, lambda m: json.loads(json.loads(m["Body"])["Message"])),
        (bus.queue_url, lambda m: json.loads(m["Body"])["detail"]),
    ):
        docs = [body_of(m) for m in receive_until(queue, 100, deadline=5.0)]
        plain = [d for d in docs if d["kind"] != "summary"]
        summaries = [d for d in docs if d["kind"] == "summary"]
        assert len(plain) == 10, queue
        assert len(summaries) == 1, queue
        assert summaries[0]["count"] == 50
        assert summaries[0]["title"].startswith("50 more alerts from S3 bucket deleted")
    assert (
        p.metrics.value(
            "veilleur_alerts_suppressed_total", rule="bucket-deleted", reason="rate_limit"
        )
        == 100  # 50 held back for each of the two sinks
    )
    p.store.close()
