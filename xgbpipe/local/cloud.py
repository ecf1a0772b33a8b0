"""The local cloud: moto, the local SageMaker, the function runner and the API gateway, wired
from template.yaml.

moto cannot invoke Lambda targets without Docker, so every event source of the template is
delivered to an SQS queue (the bucket's notifications, each EventBridge rule with the template's
own pattern) and pollers hand the messages to the runner, as Lambda's event source does. moto
runs no schedules, so rate() rules are fired here by a timer.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
import threading
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote_plus, unquote_plus

import boto3
from moto.server import ThreadedMotoServer

from xgbpipe.local.apigateway import ApiGateway
from xgbpipe.local.faults import Fault, FaultFile
from xgbpipe.local.lambda_api import LambdaApi
from xgbpipe.local.runner import DUMMY_CREDENTIALS, Endpoints, Runner, aws_environment
from xgbpipe.local.state import CloudState
from xgbpipe.local.wiring import EventRule, Wiring, load_wiring

log = logging.getLogger(__name__)

# moto keeps its backends per process, not per server: two clouds in one process would share
# queues of the same names and steal each other's messages, so only one may run at a time.
_RUNNING = threading.Lock()


class Service(Protocol):
    url: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


SageMakerFactory = Callable[..., Service]


@dataclass(frozen=True)
class Ports:
    """Where each part listens; 0 picks a free port."""

    services: int = 4566
    sagemaker: int = 4567
    lambda_api: int = 4568
    api: int = 3000


@dataclass(frozen=True)
class Delivery:
    """An SQS queue whose messages become asynchronous invocations of one function."""

    queue_url: str
    function: str
    to_events: Callable[[dict[str, Any]], list[Any]]


def s3_notification_events(body: dict[str, Any]) -> list[Any]:
    """The S3 event as Lambda would get it from a bucket notification.

    moto 5.2.5 sends an s3:TestEvent when the configuration is set, and encodes '/' in keys as
    %2F; AWS keeps '/' and encodes the rest like quote_plus, so handlers that unquote_plus the
    key get the real one either way.
    """
    if body.get("Event") == "s3:TestEvent":
        return []
    for record in body.get("Records", []):
        s3_object = record["s3"]["object"]
        s3_object["key"] = quote_plus(unquote_plus(s3_object["key"]), safe="/")
    return [body]


def eventbridge_events(body: dict[str, Any]) -> list[Any]:
    """An EventBridge rule's SQS target receives the event itself as the message body."""
    return [body]


def load_api_key(state_dir: Path) -> str:
    """The API key of the local stack, generated once and kept with the local cloud's state."""
    path = state_dir / "api-key"
    if path.exists():
        return path.read_text().strip()
    alphabet = string.ascii_letters + string.digits
    key = "".join(secrets.choice(alphabet) for _ in range(40))
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


class LocalCloud:
    def __init__(
        self,
        template_path: Path,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        ports: Ports | None = None,
        parameter_overrides: dict[str, str] | None = None,
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        sagemaker_factory: SageMakerFactory | None = None,
        sagemaker_workers: int = 2,
    ) -> None:
        self.template_path = template_path
        self.state_dir = state_dir
        self.host = host
        self.ports = ports or Ports()
        self.parameter_overrides = parameter_overrides or {}
        self.retry_delays = retry_delays
        self.sagemaker_factory = sagemaker_factory
        self.sagemaker_workers = sagemaker_workers
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._moto: ThreadedMotoServer | None = None
        self._sagemaker: Service | None = None
        self._runner: Runner | None = None
        self._lambda_api: LambdaApi | None = None
        self._api: ApiGateway | None = None
        self.wiring: Wiring | None = None
        self.endpoints: Endpoints | None = None
        self.queue_urls: dict[str, str] = {}
        self.event_queue_urls: dict[str, str] = {}
        self.notification_queue_urls: dict[str, str] = {}
        self.api_key = ""
        self.faults = FaultFile.in_state_dir(state_dir)
        self._holds_lock = False

    def start(self) -> None:
        if not _RUNNING.acquire(blocking=False):
            raise RuntimeError(
                "a local cloud is already running in this process; stop it first "
                "(moto's state is per process, so two would share their resources)"
            )
        self._holds_lock = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.faults.clear()
        # moto's server logs every request; the functions' logs are the interesting ones.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._moto = ThreadedMotoServer(self.host, self.ports.services, verbose=False)
        self._moto.start()
        services_url = _url(*self._moto.get_host_and_port())
        # A previous cloud of this process may have left moto's shared state: start empty.
        reset = urllib.request.Request(f"{services_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset).close()  # noqa: S310 - our own http URL
        self.wiring = wiring = load_wiring(
            self.template_path, self.parameter_overrides, queue_url_base=services_url
        )
        session = boto3.Session(
            region_name=wiring.region,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        self._s3 = session.client("s3", endpoint_url=services_url)
        self._sqs = session.client("sqs", endpoint_url=services_url)
        self._events = session.client("events", endpoint_url=services_url)
        self._dynamodb = session.client("dynamodb", endpoint_url=services_url)
        self._sns = session.client("sns", endpoint_url=services_url)
        deliveries = self._create_resources(wiring)

        self._sagemaker = self._make_sagemaker(services_url, wiring)
        self._sagemaker.start()
        self._lambda_api = LambdaApi(self.host, self.ports.lambda_api)
        self.endpoints = Endpoints(services_url, self._sagemaker.url, self._lambda_api.url)
        self._runner = Runner(
            wiring,
            self.endpoints,
            self._send_failure,
            log_dir=self.state_dir / "logs",
            retry_delays=self.retry_delays,
            faults_path=self.faults.path,
        )
        self._lambda_api.start(self._runner)
        for delivery in deliveries:
            self._start_poller(delivery)
        for rule in wiring.rules:
            if rule.schedule_expression and rule.enabled:
                self._start_schedule(rule)
        self.api_key = load_api_key(self.state_dir)
        self._api = ApiGateway(
            wiring.routes, self._runner.invoke, self.api_key, self.host, self.ports.api
        )
        self._api.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for part in (self._api, self._lambda_api, self._runner, self._sagemaker, self._moto):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("could not stop %s", type(part).__name__)
        if self._holds_lock:
            self._holds_lock = False
            _RUNNING.release()

    @property
    def runner(self) -> Runner:
        assert self._runner is not None, "start the local cloud first"
        return self._runner

    @property
    def api_url(self) -> str:
        assert self._api is not None
        assert self.wiring is not None
        stages = {route.stage for route in self.wiring.routes}
        return f"{self._api.url}/{min(stages)}" if stages else self._api.url

    @property
    def bucket(self) -> str:
        assert self.wiring is not None
        return self.wiring.buckets[0].name if self.wiring.buckets else ""

    def idle(self) -> bool:
        """No message waits in an event queue and no invocation is running or due for retry."""
        if any(self.runner.pending().values()):
            return False
        sqs = self._sqs
        for url in self.event_queue_urls.values():
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            if any(int(count) for count in attributes.values()):
                return False
        return not any(self.runner.pending().values())

    def arm_fault(self, fault: Fault) -> Fault:
        """Arm a fault (see xgbpipe.local.faults); a function may be named by its logical id."""
        if fault.function is not None:
            assert self.wiring is not None, "start the local cloud first"
            fault.function = self.wiring.function(fault.function).name
        return self.faults.arm(fault)

    def environment(self) -> dict[str, str]:
        """The shell exports that point boto3 and the AWS CLI at this cloud, and its outputs."""
        assert self.endpoints is not None
        assert self.wiring is not None
        return {
            **aws_environment(self.endpoints, self.wiring.region),
            "XGBPIPE_BUCKET": self.bucket,
            "XGBPIPE_API_URL": self.api_url,
            "XGBPIPE_API_KEY": self.api_key,
            "XGBPIPE_RUNS_TABLE": self.wiring.tables[0].name if self.wiring.tables else "",
        }

    def state(self, pid: int) -> CloudState:
        """What clients need to find this cloud, run by process `pid`."""
        assert self.endpoints is not None
        return CloudState(
            pid=pid,
            template=str(self.template_path.resolve()),
            parameter_overrides=self.parameter_overrides,
            services_url=self.endpoints.services,
            sagemaker_url=self.endpoints.sagemaker,
            lambda_url=self.endpoints.lambda_api or "",
            api_url=self.api_url,
            environment=self.environment(),
            failed_events_queue_url=self.queue_urls.get("FailedEventsQueue", ""),
            notification_queue_urls=self.notification_queue_urls,
        )

    def _make_sagemaker(self, services_url: str, wiring: Wiring) -> Service:
        factory = self.sagemaker_factory
        if factory is None:
            from xgbpipe.local.sagemaker import LocalSageMaker

            factory = LocalSageMaker
        return factory(
            host=self.host,
            port=self.ports.sagemaker,
            # In memory, like moto's S3 beside it: jobs must not outlive the artifacts they name.
            state_dir=None,
            max_workers=self.sagemaker_workers,
            region=wiring.region,
            account_id=wiring.account_id,
            s3_endpoint_url=services_url,
            events_endpoint_url=services_url,
            faults_path=self.faults.path,
        )

    def _create_resources(self, wiring: Wiring) -> list[Delivery]:
        s3, sqs, events, sns = self._s3, self._sqs, self._events, self._sns
        for queue in wiring.queues:
            self.queue_urls[queue.logical_id] = sqs.create_queue(QueueName=queue.name)["QueueUrl"]
        for table in wiring.tables:
            spec: dict[str, Any] = {
                "TableName": table.name,
                "KeySchema": list(table.key_schema),
                "AttributeDefinitions": list(table.attribute_definitions),
                "BillingMode": "PAY_PER_REQUEST",
            }
            if table.global_secondary_indexes:
                spec["GlobalSecondaryIndexes"] = list(table.global_secondary_indexes)
            self._dynamodb.create_table(**spec)
        for topic in wiring.topics:
            arn = sns.create_topic(Name=topic.name)["TopicArn"]
            inbox = self._event_queue(f"{topic.name}-inbox")
            self.notification_queue_urls[topic.logical_id] = inbox
            sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=self._queue_arn(inbox))
        deliveries = []
        for bucket in wiring.buckets:
            s3.create_bucket(Bucket=bucket.name)
            s3.put_bucket_versioning(
                Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
            )
            configurations: list[Any] = []
            for index, notification in enumerate(bucket.notifications):
                url = self._event_queue(f"{bucket.name}-{index}-{notification.function}")
                self.event_queue_urls[f"{bucket.logical_id}->{notification.function}"] = url
                configuration: dict[str, Any] = {
                    "QueueArn": self._queue_arn(url),
                    "Events": list(notification.events),
                }
                if notification.key_filters:
                    configuration["Filter"] = {
                        "Key": {
                            "FilterRules": [
                                {"Name": name, "Value": value}
                                for name, value in notification.key_filters
                            ]
                        }
                    }
                configurations.append(configuration)
                deliveries.append(Delivery(url, notification.function, s3_notification_events))
            if configurations:
                s3.put_bucket_notification_configuration(
                    Bucket=bucket.name,
                    NotificationConfiguration={"QueueConfigurations": configurations},
                )
        for rule in wiring.rules:
            if rule.event_pattern is None:
                continue  # scheduled: fired by _start_schedule, moto runs no schedules
            events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.event_pattern))
            url = self._event_queue(rule.name)
            self.event_queue_urls[rule.logical_id] = url
            events.put_targets(
                Rule=rule.name, Targets=[{"Id": rule.function, "Arn": self._queue_arn(url)}]
            )
            deliveries.append(Delivery(url, rule.function, eventbridge_events))
        return deliveries

    def _event_queue(self, name: str) -> str:
        url: str = self._sqs.create_queue(QueueName=name[:80])["QueueUrl"]
        return url

    def _queue_arn(self, url: str) -> str:
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        arn: str = attributes["Attributes"]["QueueArn"]
        return arn

    def _send_failure(self, queue_logical_id: str, record: dict[str, Any]) -> None:
        self._sqs.send_message(
            QueueUrl=self.queue_urls[queue_logical_id], MessageBody=json.dumps(record)
        )

    def _start_poller(self, delivery: Delivery) -> None:
        thread = threading.Thread(
            target=self._poll, args=(delivery,), name=f"poll-{delivery.function}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _start_schedule(self, rule: EventRule) -> None:
        period = schedule_period(str(rule.schedule_expression))
        if period is None:
            log.warning("%s: only rate() schedules run locally", rule.logical_id)
            return
        thread = threading.Thread(
            target=self._fire, args=(rule, period), name=f"schedule-{rule.function}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _fire(self, rule: EventRule, period: float) -> None:
        assert self.wiring is not None
        while not self._stopping.wait(period):
            self.runner.invoke_async(rule.function, scheduled_event(self.wiring, rule))

    def _poll(self, delivery: Delivery) -> None:
        sqs = self._sqs
        while not self._stopping.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=delivery.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            except Exception:
                if not self._stopping.is_set():
                    log.exception("polling %s failed", delivery.queue_url)
                    self._stopping.wait(1)
                continue
            for message in messages:
                for event in delivery.to_events(json.loads(message["Body"])):
                    self.runner.invoke_async(delivery.function, event)
                sqs.delete_message(
                    QueueUrl=delivery.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def schedule_period(expression: str) -> float | None:
    """Seconds between firings of an EventBridge rate() expression; None for cron()."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def scheduled_event(wiring: Wiring, rule: EventRule) -> dict[str, Any]:
    """The event EventBridge sends a scheduled rule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": wiring.account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": wiring.region,
        "resources": [f"arn:aws:events:{wiring.region}:{wiring.account_id}:rule/{rule.name}"],
        "detail": {},
    }


def _url(host: str, port: int) -> str:
    return f"http://{host}:{port}"
