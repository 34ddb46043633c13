"""Billing models: packages (plans) and subscribers."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql import text

from radbill import crypto
from radbill.db import AUTH_FEED, Base, BigIntPK, UTCDateTime, bump, utcnow


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as the values (readable in SQL), checked by a CHECK constraint on both databases.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


# The subscriber columns the admin's search matches a part of (billing.subscribers).
SEARCHED = ("username", "full_name", "phone")


class ServiceType(enum.StrEnum):
    """How the subscriber connects."""

    PPPOE = "pppoe"
    HOTSPOT = "hotspot"


class SubscriberStatus(enum.StrEnum):
    """Billing state. Only :mod:`billing.subscribers` changes it (see ``TRANSITIONS`` there)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"  # for non-payment: walled garden or reject, by configuration
    DISABLED = "disabled"  # by an operator, for any other reason: always rejected
    TERMINATED = "terminated"  # contract ended: always rejected, final


class BillingCycle(enum.StrEnum):
    """How often a plan renews."""

    MONTHLY = "monthly"
    WEEKLY = "weekly"
    DAILY = "daily"
    DAYS = "days"  # N-day validity (prepaid, hotspot vouchers)


class BillingMode(enum.StrEnum):
    """Whether the period is paid before (prepaid) or after (postpaid) it is used."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class Plan(Base):
    """A package an ISP sells: price, speed, cap and billing terms."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    download_bps: Mapped[int] = mapped_column(BigInteger)
    upload_bps: Mapped[int] = mapped_column(BigInteger)
    burst_download_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_upload_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_threshold_download_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_threshold_upload_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burst_time_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    data_cap_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fup_download_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fup_upload_bps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # What counts against the data cap: download, upload or both (see usage.rules).
    cap_counts: Mapped[str] = mapped_column(String(8), default="both")
    # Hotspot prepaid time quota per period, in seconds (usage part; None: no time quota).
    time_quota_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ip_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Dual-stack PPPoE: the NAS pools for the WAN prefix (Framed-IPv6-Pool) and the prefix
    # delegated to the subscriber's LAN (Delegated-IPv6-Prefix-Pool); Idle-Timeout seconds.
    ipv6_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    delegated_ipv6_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idle_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    billing_cycle: Mapped[BillingCycle] = mapped_column(
        _enum(BillingCycle, "billing_cycle"), default=BillingCycle.MONTHLY
    )
    validity_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    billing_mode: Mapped[BillingMode] = mapped_column(
        _enum(BillingMode, "billing_mode"), default=BillingMode.POSTPAID
    )
    grace_days: Mapped[int] = mapped_column(Integer, default=0)
    late_fee: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"))
    # Billing terms (see billing.cycles and billing.dunning).
    cycle_anchor: Mapped[str] = mapped_column(String(16), default="anniversary")
    billing_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    late_fee_percent: Mapped[bool] = mapped_column(Boolean, default=False)
    late_fee_cap: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    tax_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0.00"))
    setup_fee: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"))
    reminder_days: Mapped[int] = mapped_column(Integer, default=3)
    throttle_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    terminate_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    auth_version: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def prepaid(self) -> bool:
        """Whether periods are paid before they are used."""
        return self.billing_mode is BillingMode.PREPAID

    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("billing_day IS NULL OR (billing_day BETWEEN 1 AND 28)",
                        name="billing_day_range"),
        CheckConstraint("download_bps > 0 AND upload_bps > 0", name="rates_positive"),
        CheckConstraint("grace_days >= 0", name="grace_not_negative"),
    )


class Subscriber(Base):
    """A customer account that logs in over PPPoE or Hotspot."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # Fernet token: reversible on purpose, CHAP and MS-CHAPv2 need the cleartext.
    password_enc: Mapped[str] = mapped_column(Text)
    service: Mapped[ServiceType] = mapped_column(_enum(ServiceType, "service_type"))
    status: Mapped[SubscriberStatus] = mapped_column(
        _enum(SubscriberStatus, "subscriber_status"), default=SubscriberStatus.ACTIVE
    )
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    plan: Mapped[Plan] = relationship(lazy="joined", innerjoin=True, foreign_keys=[plan_id])
    static_ip: Mapped[str | None] = mapped_column(String(15), nullable=True, unique=True)
    ip_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mac_address: Mapped[str | None] = mapped_column(String(17), nullable=True)
    # Fixed IPv6 (dual-stack PPPoE): the WAN prefix and the prefix delegated to the LAN, as
    # "2001:db8:1::/64"; or a NAS pool for the WAN prefix.
    framed_ipv6_prefix: Mapped[str | None] = mapped_column(String(43), nullable=True)
    delegated_ipv6_prefix: Mapped[str | None] = mapped_column(String(43), nullable=True)
    ipv6_pool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    simultaneous_use: Mapped[int] = mapped_column(Integer, default=1)
    # End of the paid period where one applies (prepaid): sessions are cut here.
    paid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fup_throttled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set by the usage part only: over the data cap this period, at the fair-usage speed.
    # Apart from fup_throttled, which the dunning throttle sets and clears.
    cap_throttled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Hotspot prepaid quotas: what is left this period (usage part; None: no quota).
    quota_left_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_left_seconds: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Billing state: the current period [period_start, period_end) in the ISP's local dates.
    anchor_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    period_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    period_end: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    suspended_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    suspended_for_nonpayment: Mapped[bool] = mapped_column(Boolean, default=False)
    dunning_throttled: Mapped[bool] = mapped_column(Boolean, default=False)
    setup_fee_charged: Mapped[bool] = mapped_column(Boolean, default=False)
    # A plan change that takes effect when the next period starts.
    next_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), nullable=True)
    next_plan: Mapped[Plan | None] = relationship(foreign_keys=[next_plan_id])
    full_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # indexed: the portal finds the accounts of a phone number (one-time code login)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # The buyer on tax invoices: postal (installation) address, BIN (Bangladesh) or GSTIN
    # (India) when registered, and for India the State code of the place of supply (where
    # the line is installed, IGST Act s.12(11)(a)); the ISP's own State when empty.
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    tax_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state_code: Mapped[str | None] = mapped_column(String(4), nullable=True)
    # The day billing (last) started: activation, or reconnection after billing was paused.
    # No document of the subscriber's is dated before it.
    billing_started_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # Billing is paused (disabled, terminated, or suspended where the ISP does not bill
    # suspended accounts) since this day: no period is invoiced until it resumes.
    billing_paused_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    auth_version: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("simultaneous_use >= 1", name="simultaneous_use_positive"),
        # BOB and bob are one account: usernames are unique in lower case, whether or not
        # the ISP matches logins case-insensitively (RADBILL_CASE_INSENSITIVE_USERNAMES).
        Index("uq_subscribers_username_lower", func.lower(text("username")), unique=True),
        # the admin's list filtered by status or plan, a page in username order
        Index("ix_subscribers_status_username", "status", "username"),
        Index("ix_subscribers_plan_username", "plan_id", "username"),
        # The admin's search (a part of a username, name or phone, ILIKE '%...%'): trigram
        # indexes on PostgreSQL (pg_trgm, migration 0023), read as one bitmap OR. SQLite has
        # no trigram index: there the search reads the table (fine at an embedded ISP's
        # size), and these are empty partial indexes (WHERE 0) that cost nothing to keep.
        *(Index(f"ix_subscribers_{column}_trgm", column, postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"}, sqlite_where=text("0"))
          for column in SEARCHED),
    )


class IspSettings(Base):
    """The ISP's own details and billing settings (one row, id 1)."""

    __tablename__ = "isp_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="My ISP")
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    logo_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    invoice_prefix: Mapped[str] = mapped_column(String(16), default="INV-")
    next_invoice_number: Mapped[int] = mapped_column(BigInteger, default=1)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Dhaka")
    weekly_off_days: Mapped[str] = mapped_column(String(32), default="")  # e.g. "fri"
    suspension_guard_percent: Mapped[int] = mapped_column(Integer, default=20)
    # The guard holds a run only above this many suspensions: one late payer at a tiny ISP
    # is not a gateway outage.
    suspension_guard_min: Mapped[int] = mapped_column(Integer, default=5)
    # The ISP's payment terms: days from issue to due for postpaid invoices and for charges
    # issued after the service they cover started (a first invoice, a plan change).
    postpaid_due_days: Mapped[int] = mapped_column(Integer, default=7)
    promises_per_period: Mapped[int] = mapped_column(Integer, default=1)
    payment_link_base: Mapped[str] = mapped_column(Text, default="")
    # Credit notes are their own gapless series (Mushak-6.7; CGST rule 53(1A)(c)).
    credit_note_prefix: Mapped[str] = mapped_column(String(16), default="CN-")
    next_credit_note_number: Mapped[int] = mapped_column(BigInteger, default=1)
    # Whether subscribers suspended for non-payment keep being invoiced (Splynx: until
    # deactivation) or billing pauses at the suspension and restarts at reconnection.
    bill_while_suspended: Mapped[bool] = mapped_column(Boolean, default=True)
    # Termination of a prepaid account credits the unused days of the paid period.
    credit_unused_on_termination: Mapped[bool] = mapped_column(Boolean, default=False)
    # A new prepaid subscriber's service starts when the first invoice is paid.
    strict_prepay: Mapped[bool] = mapped_column(Boolean, default=False)
    # No late fee when less than this is outstanding on the invoice.
    late_fee_min_outstanding: Mapped[Decimal] = mapped_column(Numeric(14, 2),
                                                              default=Decimal("1.00"))
    # Every N days a subscriber suspended for non-payment is told how to be restored
    # (0: never).
    suspended_notice_days: Mapped[int] = mapped_column(Integer, default=0)
    # Tax documents: "" (plain invoices), "bd-mushak" (Bangladesh, Mushak-6.3/6.7) or
    # "in-gst" (India, CGST rules 46 and 53). See billing.tax.
    tax_profile: Mapped[str] = mapped_column(String(16), default="")
    tax_id: Mapped[str] = mapped_column(String(32), default="")  # seller BIN / GSTIN
    state_name: Mapped[str] = mapped_column(String(64), default="")
    state_code: Mapped[str] = mapped_column(String(4), default="")
    sac_code: Mapped[str] = mapped_column(String(16), default="")
    supplementary_duty_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2),
                                                                default=Decimal("0.00"))
    late_fee_taxable: Mapped[bool] = mapped_column(Boolean, default=False)
    signatory_name: Mapped[str] = mapped_column(String(128), default="")
    signatory_designation: Mapped[str] = mapped_column(String(128), default="")
    # Document numbers restart every financial year (CGST rule 46(b): "unique for a
    # financial year"; GSTN's advisory of 4 April 2019 asks for a new series each year): the
    # number then carries the year, INV-2627/000001. Off: one series that never restarts.
    financial_year_series: Mapped[bool] = mapped_column(Boolean, default=False)
    # The month the financial year starts (Bangladesh: 7, July; India: 4, April).
    financial_year_start_month: Mapped[int] = mapped_column(Integer, default=7)
    # The financial year (its first calendar year) the running counters belong to.
    series_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The last day a (non-dry) billing run completed for. RADIUS enforces a prepaid cut-off
    # only once billing has run for the day before it: while the scheduler is down nobody is
    # cut by a date whose invoice and reminders were never issued (see radius.policy).
    billed_through: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class Holiday(Base):
    """A day on which the ISP suspends nobody."""

    __tablename__ = "holidays"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")


class LedgerKind(enum.StrEnum):
    """What a ledger entry records. Debits (what the subscriber owes) are positive."""

    CHARGE = "charge"
    LATE_FEE = "late_fee"
    PAYMENT = "payment"
    CREDIT = "credit"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    WRITE_OFF = "write_off"


class LedgerEntry(Base):
    """One movement on a subscriber's account. Append-only; the balance is the sum."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    posted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    effective_on: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind, "ledger_kind"))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), nullable=True,
                                                   index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64), default="system")

    # The ledger check (reports/) sums every entry per invoice, payment and subscriber from
    # these indexes alone (index-only scans), not from the table.
    __table_args__ = (
        Index("ix_ledger_entries_invoice_kind_amount", "invoice_id", "kind", "amount"),
        Index("ix_ledger_entries_payment_kind_amount", "payment_id", "kind", "amount"),
        Index("ix_ledger_entries_subscriber_amount", "subscriber_id", "amount"),
    )


# An open document (credit notes are never open: they are applied when issued).
OPEN_DOCUMENT = "status = 'open' AND kind != 'credit_note'"


class InvoiceStatus(enum.StrEnum):
    """Whether an invoice is still owed. Only the settlement in billing.ledger changes it."""

    OPEN = "open"
    PAID = "paid"
    CREDITED = "credited"  # settled by credit notes
    WRITTEN_OFF = "written_off"  # settled with a write-off: the debt was given up
    APPLIED = "applied"  # a credit note (always: it is applied to its invoice when issued)


class InvoiceKind(enum.StrEnum):
    """What an invoice is for."""

    PERIOD = "period"  # a billing period of the plan
    PLAN_CHANGE = "plan_change"  # the new plan for the rest of a prepaid period
    CHARGE = "charge"  # a one-off charge an operator adds (equipment, a visit)
    LATE_FEE = "late_fee"  # the late fee on an overdue invoice
    CREDIT_NOTE = "credit_note"  # a correction of an issued invoice (negative total)


class Invoice(Base):
    """An issued invoice. Immutable once issued (see ``IMMUTABLE_INVOICE_FIELDS``):
    corrections are credit notes."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind, "invoice_kind"),
                                              default=InvoiceKind.PERIOD)
    credits_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"),
                                                           nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    # The subscriber's username (usernames never change), kept on the document so the
    # overdue list's order (oldest due date, then username) is read from an index of the
    # open documents, without joining every overdue subscriber (billing.reports.overdue)
    username: Mapped[str] = mapped_column(String(64), server_default="")
    plan_name: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # None: credit notes
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    tax_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    tax: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # Supplementary duty (Bangladesh SD, charged before VAT); zero elsewhere.
    duty: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # The tax heads as printed (CGST/SGST or IGST; VAT and SD): [{name, rate, amount}].
    tax_breakdown: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)
    # What the subscriber owed before this document (negative: credit in hand) and owes
    # after it, as the ledger said when it was issued: what the document asks to pay.
    previous_balance: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    amount_due: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    # The buyer as at issue (a tax document names them as they were).
    buyer_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    buyer_address: Mapped[str | None] = mapped_column(Text, nullable=True)
    buyer_tax_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    place_of_supply: Mapped[str | None] = mapped_column(String(4), nullable=True)
    status: Mapped[InvoiceStatus] = mapped_column(_enum(InvoiceStatus, "invoice_status"),
                                                  default=InvoiceStatus.OPEN)
    paid_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # What is still owed on the document after settlement (zero unless open): kept by
    # billing.ledger.settle and the billing run's batch in the transaction that moves the
    # money, so what is overdue today is one read of the open documents past their due date
    # (billing.reports.overdue), not a settlement of every account. `radbill billing
    # overdue-check` recomputes it from the ledger.
    outstanding: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0.00"),
                                                 server_default="0")
    payment_link: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The key of the invoice's payment link (``/pay/<pay_token>``): 128 random bits, so a link
    # cannot be derived from the invoice number. None on credit notes (nothing to pay) and on
    # invoices issued before payment links carried it.
    pay_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    pdf_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # One period invoice per subscriber and period, whatever a crashed or repeated run
        # does. A credited invoice is out of the way: a period re-priced by a plan change is
        # invoiced again after its old invoice was credited in full.
        Index("uq_invoices_period", "subscriber_id", "period_start", "kind", unique=True,
              sqlite_where=text("kind = 'period' AND status != 'credited'"),
              postgresql_where=text("kind = 'period' AND status != 'credited'")),
        Index("ix_invoices_open_due", "status", "due_on"),
        # what is overdue today: the open documents by due date with what is owed on each,
        # read from the index alone (billing.reports)
        Index("ix_invoices_open_owed", "due_on", "subscriber_id", "outstanding",
              postgresql_where=text(OPEN_DOCUMENT), sqlite_where=text(OPEN_DOCUMENT)),
        # the overdue list's order: the open documents by due date and username
        Index("ix_invoices_open_due_username", "due_on", "username", "subscriber_id",
              postgresql_where=text(OPEN_DOCUMENT), sqlite_where=text(OPEN_DOCUMENT)),
        # what was open on a past day: settled after it (the overdue report --as-of)
        Index("ix_invoices_paid_on", "paid_on"),
        # A unique index, not a constraint: SQLite adds an index in place, while a constraint
        # would rebuild the invoices table (which the ledger and payments reference).
        Index("uq_invoices_pay_token", "pay_token", unique=True),
        # invoiced this month (the revenue-by-nas report)
        Index("ix_invoices_issued_on", "issued_on"),
    )


# What may change on an issued invoice: its settlement and its archived file. Everything else
# is what the customer was sent.
MUTABLE_INVOICE_FIELDS = frozenset({"status", "paid_on", "outstanding", "pdf_path",
                                    "pdf_sha256"})


class InvoiceLine(Base):
    """One line of an invoice."""

    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric(10, 4))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # The line's own supplementary duty and VAT/GST (tax invoices show them per line);
    # None on lines issued before they were kept.
    duty: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    tax: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)


class Payment(Base):
    """Money received. The gateway's or operator's reference is unique per method."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("method", "reference"),
                      # collected this month (the revenue-by-nas report); revenue today,
                      # this month, per day (the dashboard): summed from the index alone (a
                      # month at a million subscribers is a million payments)
                      Index("ix_payments_received_at", "received_at", "currency", "amount"))


class PaymentDayTotal(Base):
    """Payments received on one ISP-local day in one currency by one method: their sum and
    count, kept by :func:`billing.payments.record_payment` in the transaction that records
    each payment (the only way a payment row is written), so the dashboard's revenue today,
    this month and per day, and the daily summary's collected line, read a few rows instead
    of summing a month of payments. ``radbill billing totals-check`` recomputes them from
    the payments (and ``--repair`` restates them)."""

    __tablename__ = "payment_day_totals"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)  # ISP-local, of received_at
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    method: Mapped[str] = mapped_column(String(32), primary_key=True)
    # a day's sum of Numeric(14, 2) payments: two more digits than one payment
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    payments: Mapped[int] = mapped_column(BigInteger)


class OverdueDayTotal(Base):
    """What is still owed on the open documents due on one day, in one currency: the sum of
    their kept ``outstanding`` (in cents: exact on SQLite too) and how many of them owe
    something. Kept by database triggers on ``invoices`` (migration 0029: every path that
    writes a document's status, due date or amount, the ORM, the billing run's ``COPY`` and
    set-based updates alike, moves it in the same transaction), so today's overdue totals
    are the sum of the rows due before today: a read of a few rows, not of every overdue
    document. ``radbill billing overdue-check`` recomputes it from the documents."""

    __tablename__ = "overdue_day_totals"

    due_on: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    documents: Mapped[int] = mapped_column(BigInteger)


class OverdueAccount(Base):
    """A subscriber's oldest due date among its open documents that still owe something
    (``since``; None: nothing owed), kept by the same triggers: the subscriber is overdue
    on any day after it. The triggers lock this row while they restate it, so two
    transactions moving the same subscriber's documents take turns."""

    __tablename__ = "overdue_accounts"

    subscriber_id: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                               autoincrement=False)
    since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class OverdueSinceCount(Base):
    """How many subscribers' oldest owed document is due on one day (:class:`OverdueAccount`
    counted per ``since``), kept by the same triggers: today's overdue count is the sum of
    the rows before today."""

    __tablename__ = "overdue_since_counts"

    since: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    subscribers: Mapped[int] = mapped_column(BigInteger)


class Promise(Base):
    """An operator's promise-to-pay extension for a subscriber."""

    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    until: Mapped[dt.date] = mapped_column(Date)
    period_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|kept|broken
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))


class PlanChange(Base):
    """A subscriber's move to another plan on a day. Postpaid periods are invoiced at their
    end with a line per plan the period ran on, from these rows."""

    __tablename__ = "plan_changes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"))
    changed_on: Mapped[dt.date] = mapped_column(Date)
    from_plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    to_plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    from_plan: Mapped[Plan] = relationship(foreign_keys=[from_plan_id])
    to_plan: Mapped[Plan] = relationship(foreign_keys=[to_plan_id])
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_plan_changes_subscriber_day", "subscriber_id", "changed_on"),)


class EnforcementRequest(Base):
    """A change the network must follow (consumed by the enforcement part)."""

    __tablename__ = "enforcement_requests"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    # suspend | reconnect | throttle | unthrottle | plan_change | terminate | disconnect | resync
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    # pending -> working -> confirming -> done; retry (back-off) | failed | superseded
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirm_by: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set for an operator's "disconnect this session": only that session is touched, and the
    # request neither supersedes nor is superseded by the subscriber's other requests.
    nas_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    acct_session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)

    __table_args__ = (Index("ix_enforcement_requests_due", "status", "next_attempt_at"),)


# A rotation stamps the auth feed: the RADIUS snapshot keeps the tokens (it decrypts a
# password at login), so it must read the new ones before the old key goes.
crypto.encrypted(Subscriber.password_enc,
                 announce=lambda session: {"auth_version": bump(session, AUTH_FEED)})
