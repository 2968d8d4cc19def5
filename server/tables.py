"""Piccolo tables. Times are UTC (timestamptz); JSON payloads are msgspec-encoded text so both engines
store and return exactly the same bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from piccolo.columns import (
    BigInt,
    BigSerial,
    Boolean,
    ForeignKey,
    Integer,
    Real,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.table import Table


class Station(Table, tablename="stations"):
    """A node of the province → city → district → station tree (网点 at the leaves)."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    code = Varchar(length=64, unique=True)
    name = Varchar(length=128)
    level = Varchar(length=16, default="station")  # province | city | district | station
    parent: ForeignKey[Station] = ForeignKey("self", null=True, on_delete=OnDelete.restrict, index=True)
    timezone = Varchar(length=64, default="Asia/Shanghai")


class Zone(Table, tablename="zones"):
    """A pickup zone (片区) of one station: a WGS-84 polygon and/or admin-area names."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    station = ForeignKey(Station, on_delete=OnDelete.restrict, index=True)
    code = Varchar(length=64, unique=True)
    name = Varchar(length=128)
    geojson = Text(null=True, default=None)  # geometry only, WGS-84
    admin_areas = Text(default="[]")  # JSON list of district / street names
    priority = Integer(default=0)
    dispatch_mode = Varchar(length=16, default="grab")  # grab | assign
    offer_ttl_s = Integer(default=60)
    sla_minutes = Real(default=120.0)  # fractions allowed: tests and express zones use short limits
    active = Boolean(default=True)
    # Opening hours, local wall-clock "HH:MM" in the station's timezone, cut into pickup slots of
    # slot_minutes (server/domain/slots.py).
    opens = Varchar(length=5, default="08:00")
    closes = Varchar(length=5, default="20:00")
    slot_minutes = Integer(default=120)


class StopShipArea(Table, tablename="stop_ship_areas"):
    """A stop-ship area (停发区域): no pickups are taken inside it while it is in force.

    An area is a WGS-84 polygon and/or admin-area names (province, city, district or street names); it
    belongs to a station (whose dispatchers manage it) or, with none, to the admins (nationwide). It is
    in force from starts_at until ends_at (open-ended when None); ending it sets ends_at.
    """

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    station = ForeignKey(Station, null=True, default=None, on_delete=OnDelete.restrict, index=True)
    name = Varchar(length=128)
    reason = Varchar(length=200)
    geojson = Text(null=True, default=None)  # geometry only, WGS-84
    admin_areas = Text(default="[]")  # JSON list of names
    starts_at = Timestamptz()
    ends_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class User(Table, tablename="users"):
    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    username = Varchar(length=64, unique=True)
    display_name = Varchar(length=128)
    phone = Varchar(length=20, null=True, default=None)
    role = Varchar(length=16)  # courier | dispatcher | admin
    password_hash = Varchar(length=255)
    active = Boolean(default=True)
    station = ForeignKey(Station, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()


class Courier(Table, tablename="couriers"):
    """A courier's working state; one row per user with the courier role."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    user = ForeignKey(User, unique=True, on_delete=OnDelete.cascade)
    on_duty = Boolean(default=False, index=True)
    capacity = Integer(default=8)
    last_seen_at = Timestamptz(null=True, default=None)
    last_lat = Real(null=True, default=None)
    last_lng = Real(null=True, default=None)
    duty_changed_at = Timestamptz(null=True, default=None)


class CourierZone(Table, tablename="courier_zones"):
    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    courier = ForeignKey(Courier, on_delete=OnDelete.cascade, index=True)
    zone = ForeignKey(Zone, on_delete=OnDelete.cascade, index=True)
    role = Varchar(length=8, default="primary")  # primary | backup


class Partner(Table, tablename="partners"):
    """A platform sending pickups by API. Only a SHA-256 of its (high-entropy, generated) key is kept."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    code = Varchar(length=64, unique=True)
    name = Varchar(length=128)
    api_key_hash = Varchar(length=64, unique=True)
    api_key_prefix = Varchar(length=16)
    active = Boolean(default=True)
    created_at = Timestamptz()
    # Webhook delivery: the partner's events are read from the log after this cursor and POSTed in
    # order, signed with the secret; the cursor moves only when the partner answers 2xx.
    webhook_url = Varchar(length=500, null=True, default=None)
    webhook_secret = Varchar(length=64, null=True, default=None)
    webhook_cursor = BigInt(default=0)
    webhook_attempts = Integer(default=0)
    webhook_next_ms = BigInt(default=0)  # no attempt before this (backoff after a failure)
    webhook_lease_ms = BigInt(default=0)  # a process delivering holds the partner until this
    webhook_last_error = Varchar(length=500, null=True, default=None)
    # Set when a batch has failed for the whole give-up time: delivery stops until the partner re-arms.
    webhook_dead_since = Timestamptz(null=True, default=None)


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """One batch POSTed to a partner's webhook and every attempt at it: the partner's audit trail.

    A batch is fixed when it is first sent (the events after the cursor then), and each retry sends those
    same events. A replay is a delivery of its own pointing at the one it repeats (`replay_of`). The
    states: pending (not yet answered) → delivered, or failing (retried with backoff) → delivered or
    dead (given up after the give-up time; a replay is tried once). `rearmed_at` marks the dead one the
    partner re-armed delivery after.
    """

    id = BigSerial(primary_key=True)
    partner = ForeignKey(Partner, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=16, default="pending", index=True)
    # The events it carried (JSON list of {"id", "type"}, in order) and the cursor it moves to when
    # delivered (its last event read, which may be an internal one the partner is not sent).
    events = Text(default="[]")
    through_event_id = BigInt(default=0)
    replay_of = BigInt(null=True, default=None)
    attempts = Integer(default=0)
    last_status_code = Integer(null=True, default=None)
    last_error = Varchar(length=500, null=True, default=None)
    # Epoch milliseconds of the first attempt: the give-up clock (an integer compare on both engines).
    first_attempt_ms = BigInt(default=0)
    created_at = Timestamptz()
    last_attempt_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    dead_at = Timestamptz(null=True, default=None)
    rearmed_at = Timestamptz(null=True, default=None)


class Pickup(Table, tablename="pickups"):
    id = BigSerial(primary_key=True)
    tracking_code = Varchar(length=32, unique=True)  # LS + 20 (older: LS + 10)
    partner = ForeignKey(Partner, null=True, on_delete=OnDelete.restrict, index=True)
    partner_order_no = Varchar(length=64, null=True, default=None)
    status = Varchar(length=16, index=True)
    zone = ForeignKey(Zone, null=True, on_delete=OnDelete.restrict, index=True)
    courier = ForeignKey(Courier, null=True, on_delete=OnDelete.restrict, index=True)
    sender_name = Varchar(length=64)
    sender_phone = Varchar(length=20)
    # The phone's last four digits, for the console's search (a suffix LIKE can use no index); written
    # with the phone (pickups/service.py insert_pickups).
    sender_phone_last4 = Varchar(length=4, default="", index=True)
    province = Varchar(length=32)
    city = Varchar(length=32)
    district = Varchar(length=32)
    street = Varchar(length=64, default="")
    address_detail = Varchar(length=200)
    lat = Real(null=True, default=None)  # WGS-84
    lng = Real(null=True, default=None)
    window_start = Timestamptz(null=True, default=None)
    window_end = Timestamptz(null=True, default=None)
    parcel_count = Integer(default=1)
    weight_kg = Real(null=True, default=None)
    note = Varchar(length=500, default="")
    # Unique where set (one pickup per waybill): a partial index in migrations (20:10), not a column option.
    waybill_no = Varchar(length=40, null=True, default=None)
    failure_reason = Varchar(length=32, null=True, default=None)
    # What the courier recorded at the door when collecting (the partner's parcel_count and weight_kg
    # are what the customer declared): pieces, weight, whether it was re-packed, the photo if one.
    collected_pieces = Integer(null=True, default=None)
    collected_weight_kg = Real(null=True, default=None)
    repacked = Boolean(default=False)
    collected_photo = BigInt(null=True, default=None)  # a PickupPhoto id (no FK: the photo points here)
    offer_round = Integer(default=0)
    # 0 zone's couriers, 1 backup couriers, 2 whole station, 3 the dispatcher (see dispatch/rules.py).
    escalation_stage = Integer(default=0)
    # True while a held pickup is one a dispatcher assigned and its courier has not accepted it
    # (dispatch/service.py _hand_over sets it, the courier's accept clears it): the console says so.
    assigned_by_dispatcher = Boolean(default=False)
    sla_state = Varchar(length=12, default="ok")  # ok | warning | breached
    chase_count = Integer(default=0)
    chased_at = Timestamptz(null=True, default=None)
    version = Integer(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    due_at = Timestamptz(null=True, default=None)


class PickupFeedback(Table, tablename="pickup_feedback"):
    """What the customer (or the partner for them) said after the pickup: a rating (1-5 stars, once,
    after collection) or a complaint (after collection or failure). Reports read them here; the event
    log has the same as pickup.rated / pickup.complained."""

    id = BigSerial(primary_key=True)
    pickup = ForeignKey(Pickup, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=12)  # rating | complaint
    stars = Integer(null=True, default=None)  # ratings only
    text = Varchar(length=1000, default="")
    actor_kind = Varchar(length=16)  # customer | partner
    created_at = Timestamptz()


class PickupPhoto(Table, tablename="pickup_photos"):
    """A photo the courier took of a pickup's parcel; the image is a file under LANSHOU_PHOTO_DIR."""

    id = BigSerial(primary_key=True)
    pickup = ForeignKey(Pickup, on_delete=OnDelete.restrict, index=True)
    courier = ForeignKey(Courier, on_delete=OnDelete.restrict, index=True)
    content_type = Varchar(length=32)
    size = Integer()
    sha256 = Varchar(length=64)
    file_name = Varchar(length=100)  # generated; relative to the photo directory
    created_at = Timestamptz()


class PickupOffer(Table, tablename="pickup_offers"):
    """Who a pickup was put in front of, in which round, and how that ended."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    pickup = ForeignKey(Pickup, on_delete=OnDelete.cascade, index=True)
    courier = ForeignKey(Courier, on_delete=OnDelete.cascade, index=True)
    round = Integer(default=1)
    offered_at = Timestamptz()
    expires_at = Timestamptz(null=True, default=None)
    outcome = Varchar(length=16, null=True, default=None)  # accepted | declined | withdrawn | expired
    # The alert timeline (server receipt times; the courier's own clock is on the action's event):
    # on the courier's screen, answered (accepted or declined), first call to the customer.
    seen_at = Timestamptz(null=True, default=None)
    answered_at = Timestamptz(null=True, default=None)
    contacted_at = Timestamptz(null=True, default=None)


class Event(Table, tablename="events"):
    """The append-only log: every state change writes one row in the same transaction.

    SSE resume, the partner's history, webhooks and reports all read this one log.
    """

    id = BigSerial(primary_key=True)
    pickup = ForeignKey(Pickup, null=True, on_delete=OnDelete.restrict, index=True)
    type = Varchar(length=48)
    actor_kind = Varchar(length=16)  # partner | courier | dispatcher | admin | system | customer
    actor_id = BigInt(null=True, default=None)
    at = Timestamptz()
    data = Text(default="{}")
    # What the actor's device said: its own id for the action (exactly-once replay) and when it happened.
    client_action_id = Varchar(length=64, null=True, default=None, index=True)
    client_at = Timestamptz(null=True, default=None)


class EventRecipient(Table, tablename="event_recipients"):
    """Which couriers an event is pushed to: the index behind each courier's resumable SSE stream."""

    id = BigSerial(primary_key=True)

    event = ForeignKey(Event, on_delete=OnDelete.cascade)
    courier = ForeignKey(Courier, on_delete=OnDelete.cascade)


class Timer(Table, tablename="timers"):
    """A due time kept in the database (offer expiry, escalation, time-limit warning and breach).

    Each server process's scheduler claims due timers atomically; a timer carries the offer round it
    was set for, so one that a later change made stale is dropped instead of acted on.
    """

    id = BigSerial(primary_key=True)
    kind = Varchar(length=24)  # offer_expiry | sla_warning | sla_breach | alert_sms | alert_voice
    pickup = ForeignKey(Pickup, on_delete=OnDelete.cascade, index=True)
    # The courier a per-courier timer is for (the gateway alerts); None for the pickup's own timers.
    courier = ForeignKey(Courier, null=True, default=None, on_delete=OnDelete.cascade)
    # Epoch milliseconds, not a timestamp column: SQLite compares timestamps as text, and Piccolo binds
    # parameters in a different text form than it stores, so "due <= now" must be an integer compare.
    due_ms = BigInt(index=True)
    round = Integer(default=0)
    attempts = Integer(default=0)


class Session(Table, tablename="sessions"):
    """Server-side login sessions (shared by every server process through the database)."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    key = Varchar(length=128, unique=True)
    data = Text()
    expires_at = Timestamptz(null=True, default=None, index=True)


class ThrottleCount(Table, tablename="throttle_counts"):
    """Failures counted per key (a username, a client address) for limits that every server process
    shares (see server/throttle.py). A row whose window has ended counts as zero; old rows are purged."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    key = Varchar(length=200, unique=True)
    hits = Integer(default=0)
    # Epoch milliseconds, an integer compare on both engines (see Timer.due_ms).
    window_ends_ms = BigInt(default=0, index=True)


class IdempotencyKey(Table, tablename="idempotency_keys"):
    """A partner's Idempotency-Key and what its first request answered (server/partnerapi/idempotency.py).

    Unique per (partner, key) through `scoped_key` ("<partner id>:<key>"): a unique column, which both
    engines take in one migration (Piccolo adds a two-column constraint by ALTER TABLE, which SQLite
    lacks). `state` is "running" while the
    first request is under way (until `lease_ms`, after which another may take the key over) and "done"
    once its answer is stored; a row older than the keys' lifetime counts as gone and is purged."""

    if TYPE_CHECKING:
        id: Serial
    partner = ForeignKey(Partner, on_delete=OnDelete.cascade)
    key = Varchar(length=255)
    scoped_key = Varchar(length=276, unique=True)
    # sha256 of method, path, query and body: the same key with another request is a conflict.
    fingerprint = Varchar(length=64)
    request_line = Varchar(length=300)  # "POST /api/v1/pickups", to name the conflict
    state = Varchar(length=8, default="running")  # running | done
    status_code = Integer(null=True, default=None)
    content_type = Varchar(length=100, default="application/json")
    body = Text(default="")
    # Epoch milliseconds, integer compares on both engines (see Timer.due_ms).
    created_ms = BigInt(default=0, index=True)
    lease_ms = BigInt(default=0)


class PushSubscription(Table, tablename="push_subscriptions"):
    """A courier's browser registered for Web Push: where to send (the push service's endpoint URL)
    and the keys to encrypt for it (RFC 8291). Removed when the push service says it is gone."""

    if TYPE_CHECKING:  # Piccolo adds this primary key itself; declaring it would alter migrations
        id: Serial
    courier = ForeignKey(Courier, on_delete=OnDelete.cascade, index=True)
    endpoint = Varchar(length=1000, unique=True)
    p256dh = Varchar(length=100)  # base64url of the browser's P-256 public key (65 bytes)
    auth = Varchar(length=40)  # base64url of the 16-byte auth secret
    created_at = Timestamptz()
    last_error = Varchar(length=200, null=True, default=None)


TABLES: list[type[Table]] = [
    Station,
    Zone,
    StopShipArea,
    User,
    Courier,
    CourierZone,
    Partner,
    Pickup,
    PickupPhoto,
    PickupFeedback,
    PickupOffer,
    Event,
    EventRecipient,
    Timer,
    Session,
    ThrottleCount,
    PushSubscription,
    WebhookDelivery,
    IdempotencyKey,
]
