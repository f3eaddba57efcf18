"""A labelled synthetic corpus for PII detection, generated locally and deterministically.

    samples = generate(2000, seed=20240601)
    for sample in samples:
        sample.text, sample.labels      # labels: (type, start, end, subtype, obfuscated)
        sample.negatives                # hard negatives present: (kind, start, end)

Each text is a support email, a chat message, a log excerpt, a form, or a JSON tool call, in
English mostly (some French, German and Spanish), made of sentences that carry PII of each type
in varied formats (values from pii_corpus_values, with valid checksums), hard negatives (order
numbers, dates, times, version strings, tracking numbers, 16-digit numbers failing Luhn, UUIDs,
hex hashes, prices, MAC addresses, ISBNs, EAN barcodes, base64-encoded data, public keys and
certificates, Stripe-style object ids, long identifiers, and values failing their checksum: IBANs,
SSNs, DNIs, NIRs, BSNs, tax ids), and plain filler. Every PII value placed is labelled with its exact span;
nothing else in the text is PII. About 8% of the structured values are obfuscated the way an
attacker would hide them (zero-width characters, fullwidth forms, no-break spaces, soft hyphens,
Unicode dashes, Arabic-Indic digits); their labels cover the obfuscated text.

Names and addresses are labelled too (type `name` / `address`), including mentions the
heuristic cannot be expected to find ("I spoke with Maria Garcia"), so their figures are honest.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.guardrails import pii_corpus_values as values
from tests.guardrails.pii_corpus_negatives import NEGATIVES, negative

STRUCTURED = ("email", "phone", "card", "iban", "national_id", "ip", "secret")


@dataclass(frozen=True)
class Label:
    type: str
    start: int
    end: int
    subtype: str
    obfuscated: bool = False


@dataclass(frozen=True)
class Sample:
    text: str
    labels: tuple[Label, ...]
    negatives: tuple[tuple[str, int, int], ...]  # (kind, start, end) of each hard negative
    genre: str


# --- templates ----------------------------------------------------------------------------------------
# `{v}` is the value of the sentence's type; `{name}`/`{first}`/`{last}` are labelled names;
# `{email}` in a name template is a labelled email.

PROSE: dict[str, tuple[str, ...]] = {
    "email": (
        "You can reach me at {v} any time.",
        "Please send the invoice to {v}.",
        "My email changed, it is now {v}",
        "cc {v} on the reply please",
        "Contact: {v}",
        "Écrivez-moi à {v}, merci.",
        "Meine E-Mail-Adresse lautet {v}.",
        "Mi correo es {v}.",
        "Forwarding from <{v}>:",
    ),
    "phone": (
        "Call me on {v} after 5pm.",
        "My number is {v}.",
        "Phone: {v}",
        "You can text {v} if that is easier.",
        "The store's hotline ({v}) did not answer.",
        "Mon numéro : {v}",
        "Rufen Sie mich unter {v} an.",
        "Llámame al {v}, por favor.",
        "reach me at {v} or by email",
        "<a href='tel:{v}'>call us</a>",
    ),
    "bare_phone": ("Call me at {v} tomorrow.", "phone: {v}", "Mobile {v}", "please text me at {v}"),
    "card": (
        "Please charge my card {v}, it expires 09/27.",
        "The payment with card {v} was declined twice.",
        "card number: {v}",
        "I was billed on {v} but I cancelled.",
        "Ma carte {v} a été débitée deux fois.",
        "Meine Kreditkarte {v} wurde abgelehnt.",
        "Use {v} for the renewal.",
    ),
    "iban": (
        "Please refund to IBAN {v}.",
        "Our bank details: {v} (BIC DEUTDEFF).",
        "Wire the deposit to {v} before Friday.",
        "Mon IBAN : {v}",
        "Bitte überweisen Sie auf {v}.",
        "IBAN: {v}",
    ),
    "ip": (
        "The request came from {v} again.",
        "Our office IP is {v}, please allowlist it.",
        "I can ping {v} but not the gateway.",
        "blocked address {v} after 5 failed logins",
    ),
    "secret": (
        "Here is the key you asked for: {v}",
        "Oops, I pasted my key by mistake: {v} please ignore",
        "The deploy uses {v} as its credential.",
        "token {v}",
        "Can you check why {v} is rejected?",
    ),
    "token": (
        "the staging token is {v} if you need it",
        "Use this session token {v} to log in.",
        "my API token {v} stopped working",
    ),
    "bearer": (
        "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/me",
        "Authorization: Bearer {v}",
    ),
    "password": (
        "password: {v}",
        "The new password is password={v}",
        "DB_PASSWORD={v}",
        "login with user admin, pwd: {v}",
    ),
    "url_password": (
        "DATABASE_URL=postgres://app:{v}@db.internal:5432/app",
        "connect with redis://:{v}@cache-01:6379/0",
        "amqp://guest:{v}@10.0.4.2:5672/ failed",
    ),
    "name": (
        "My name is {name} and I ordered last week.",
        "I'm {name}, the account owner.",
        "This is {name} from accounting.",
        "Please ask Mr. {last} to call back.",
        "Dr. {name} will review the file.",
        "I spoke with {name} yesterday about it.",
        "{name} <{email}> wrote:",
        "Mme {last} a appelé ce matin.",
        "Frau {last} ist bis Montag im Urlaub.",
    ),
    "address": (
        "Please ship it to {v}.",
        "My new address is {v}.",
        "Deliver to {v} before noon.",
        "Livraison au {v}, s'il vous plaît.",
        "Lieferadresse: {v}",
        "Enviar a {v}.",
    ),
}

NATIONAL_ID_PROSE: dict[str, tuple[str, ...]] = {
    "us_ssn": (
        "My SSN is {v}.",
        "social security number {v}",
        "Verify the applicant {v} please.",
        "SSN: {v}",
    ),
    "us_ssn_bare": ("SSN {v}", "my social security number is {v}"),
    "uk_nino": ("My National Insurance number is {v}.", "NI number: {v}", "NINO {v}"),
    "fr_nir": ("Mon numéro de sécurité sociale est le {v}.", "NIR : {v}", "n° SS {v}"),
    "es_dni": ("Mi DNI es {v}.", "DNI: {v}", "documento {v}"),
    "es_nie": ("NIE {v}", "Mi NIE es {v}."),
    "de_tax_id": ("Meine Steuer-ID lautet {v}.", "Steueridentifikationsnummer: {v}", "tax id {v}"),
    "nl_bsn": ("Mijn BSN is {v}.", "BSN: {v}", "burgerservicenummer {v}"),
    "nl_bsn_dotted": ("Mijn BSN is {v}.", "sofinummer {v}", "Nummer {v} staat op mijn paspoort."),
    "it_cf": ("Il mio codice fiscale è {v}.", "CF: {v}", "codice fiscale {v}"),
}

LOG_KEYS: dict[str, tuple[str, ...]] = {
    "email": ("user_email", "from", "to", "customer"),
    "phone": ("phone", "msisdn", "caller"),
    "bare_phone": ("phone",),
    "card": ("pan", "card"),
    "iban": ("iban", "payout_account"),
    "national_id": ("national_id", "tax_id"),
    "ip": ("client_ip", "remote_addr", "src"),
    "secret": ("key", "credential"),
    "token": ("auth_token", "access_token"),
    "bearer": ("authorization",),
    "password": ("password", "db_password"),
    "url_password": ("dsn",),
    "address": ("shipping_address",),
    "name": ("customer_name",),
}
LOG_EVENTS = (
    "checkout failed",
    "login ok",
    "webhook received",
    "retrying request",
    "profile updated",
    "sync done",
)

FILLER = (
    "Thanks for getting back to me so quickly.",
    "I have been a customer for years and never had this problem.",
    "The app crashes when I open the settings page.",
    "Could you look into this as soon as possible?",
    "Let me know if you need anything else from me.",
    "We rolled the change out to 3 regions this morning.",
    "Nothing changed on our side since Monday.",
    "The dashboard shows 12 failed jobs in the last hour.",
    "I tried clearing the cache but it did not help.",
    "Merci de votre aide.",
    "Vielen Dank im Voraus.",
    "Gracias por la ayuda.",
    "The Premium plan should include this feature.",
    "Our team in Berlin noticed it first.",
    "Is there a workaround for now?",
    "See the attached screenshot.",
)
GREETINGS = (
    "Hi {first},",
    "Dear {name},",
    "Hello {first},",
    "Hi team,",
    "Hello,",
    "Bonjour,",
    "Hallo {first},",
)
SIGNOFFS = (
    "Best regards,\n{name}",
    "Thanks,\n{first}",
    "Cheers,\n{name}",
    "— {name}",
    "Thank you!",
    "Regards,\n{name}",
)


# --- obfuscation ----------------------------------------------------------------------------------------

_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")


def obfuscate(rng: random.Random, value: str) -> str:
    """`value` disguised the way an attacker hides a value from a pattern; same first and last
    character positions (nothing is inserted before the first or after the last character)."""
    trick = rng.choice(
        ["zero_width", "zero_width", "fullwidth", "nbsp", "soft_hyphen", "dash", "arabic_digits"]
    )
    if (
        trick in ("zero_width", "soft_hyphen")
        or (trick == "nbsp" and " " not in value)
        or (trick == "dash" and "-" not in value)
    ):
        chars = list(value)
        for _ in range(rng.randint(1, 3)):
            position = rng.randint(1, len(chars) - 1)
            chars.insert(position, "\u00ad" if trick == "soft_hyphen" else rng.choice(_ZERO_WIDTH))
        return "".join(chars)
    if trick == "fullwidth":
        return "".join(
            chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in value
        )
    if trick == "nbsp":
        return value.replace(" ", rng.choice(["\u00a0", "\u202f"]))
    if trick == "dash":
        return value.replace("-", rng.choice(["\u2010", "\u2013", "\u2212"]))
    return "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in value)


# --- assembly ---------------------------------------------------------------------------------------

_MARK = re.compile(r"\{(v|n|name|first|last|email)\}")


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.parts: list[str] = []
        self.size = 0
        self.labels: list[Label] = []
        self.negatives: list[tuple[str, int, int]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def labelled(self, kind: str, value: str, subtype: str) -> None:
        obfuscated = kind in STRUCTURED and kind != "secret" and self.rng.random() < 0.08
        obfuscated = obfuscated or (kind == "secret" and self.rng.random() < 0.04)
        if obfuscated:
            value = obfuscate(self.rng, value)
        self.labels.append(Label(kind, self.size, self.size + len(value), subtype, obfuscated))
        self.add(value)

    def negative(self, kind: str, value: str) -> None:
        self.negatives.append((kind, self.size, self.size + len(value)))
        self.add(value)

    def sentence(self, template: str, fill: Callable[[str], None]) -> None:
        """Add `template`, calling `fill(marker)` for each `{marker}` in it."""
        position = 0
        for match in _MARK.finditer(template):
            self.add(template[position : match.start()])
            fill(match.group(1))
            position = match.end()
        self.add(template[position:])


def _entity(rng: random.Random, kind: str) -> tuple[str, str, str]:
    """(label type, value, subtype) for a sentence kind."""
    if kind == "email":
        return ("email", *values.email(rng))
    if kind == "phone":
        return ("phone", *values.phone(rng))
    if kind == "bare_phone":
        return ("phone", *values.bare_us_phone(rng))
    if kind == "card":
        return ("card", *values.card(rng))
    if kind == "iban":
        return ("iban", *values.iban(rng))
    if kind == "ip":
        return ("ip", *values.ip(rng))
    if kind == "secret":
        return ("secret", *values.secret(rng))
    if kind == "token":
        return "secret", values.token(rng), "high_entropy"
    if kind == "bearer":
        return "secret", values.token(rng), "bearer_token"
    if kind in ("password", "url_password"):
        return "secret", values.password(rng), kind
    if kind == "address":
        return ("address", *values.address(rng))
    raise ValueError(kind)


_KINDS = (
    ("email", 14), ("phone", 14), ("bare_phone", 2), ("card", 12), ("iban", 10), ("national_id", 14),
    ("ip", 9), ("secret", 8), ("token", 2), ("bearer", 2), ("password", 3), ("url_password", 2),
    ("name", 8), ("address", 7),
)  # fmt: skip


def _national_id(rng: random.Random) -> tuple[str, str, str]:
    """(value, subtype, template key) for a national id sentence."""
    value, subtype = values.national_id(rng)
    key = subtype
    if subtype == "us_ssn" and rng.random() < 0.25:
        value, key = values.ssn(rng), "us_ssn_bare"
    elif subtype == "nl_bsn" and "." in value:
        key = "nl_bsn_dotted"
    return value, subtype, key


# How a value is written as a field of a log line, form or JSON object (default: as it is).
FIELD_TEMPLATES = {
    "url_password": "postgres://app:{v}@db.internal:5432/app",
    "bearer": "Bearer {v}",
    "us_ssn_bare": "SSN {v}",
    "nl_bsn": "BSN {v}",
}


def _entity_sentence(b: _Builder, kind: str, genre: str) -> None:
    rng = b.rng
    first, last = values.person(rng)
    structured = genre in ("log", "form", "json")

    def names(marker: str) -> None:
        if marker == "name":
            b.labelled("name", f"{first} {last}", "full")
        elif marker == "first":
            b.labelled("name", first, "first")
        elif marker == "last":
            b.labelled("name", last, "last")
        elif marker == "email":
            b.labelled("email", *values.email(rng))

    if kind == "name":
        if structured:
            b.labelled("name", f"{first} {last}", "full")
        else:
            b.sentence(rng.choice(PROSE["name"]), names)
        return
    if kind == "national_id":
        value, subtype, key = _national_id(rng)
        label, templates = "national_id", NATIONAL_ID_PROSE[key]
    else:
        label, value, subtype = _entity(rng, kind)
        key, templates = kind, PROSE[kind]
    if structured:
        template = FIELD_TEMPLATES.get(key, "{v}")
        if genre == "json":
            value = value.replace("\n", "\\n")  # a PEM block inside a JSON string
    else:
        template = rng.choice(templates)

    def fill(marker: str) -> None:
        if marker == "v":
            b.labelled(label, value, subtype)
        else:
            names(marker)

    b.sentence(template, fill)


def _line(b: _Builder, genre: str, key: str, write: Callable[[], None]) -> None:
    """One field of a log line, form or JSON object, written by `write`."""
    rng = b.rng
    if genre == "log":
        b.add(
            f"{rng.randint(2023, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        )
        b.add(f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z {rng.choice(['INFO', 'WARN', 'ERROR'])} ")
        b.add(f"[{rng.choice(['api', 'worker', 'billing', 'auth'])}] {rng.choice(LOG_EVENTS)} {key}=")
        write()
        b.add("\n")
    elif genre == "form":
        b.add(f"{key.replace('_', ' ').title()}: ")
        write()
        b.add("\n")
    else:
        b.add(f'  "{key}": "')
        write()
        b.add('",\n')


def _sample(rng: random.Random) -> Sample:
    genre = rng.choice(["email", "email", "chat", "chat", "log", "form", "json"])
    chosen = rng.choices(
        [k for k, _ in _KINDS], [w for _, w in _KINDS], k=rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4])
    )
    negatives = rng.choices(sorted(NEGATIVES), k=rng.choice([0, 1, 1, 2, 2, 3]))
    b = _Builder(rng)
    items: list[tuple[str, str]] = [("entity", k) for k in chosen] + [("negative", k) for k in negatives]
    rng.shuffle(items)
    if genre in ("log", "form", "json"):
        if genre == "json":
            tool = rng.choice(["lookup_customer", "issue_refund", "send_email"])
            b.add('{"tool": "' + tool + '", "args": {\n')
        for what, kind in items:
            if what == "entity":
                key = rng.choice(LOG_KEYS.get(kind, ("value",)))
                _line(b, genre, key, lambda kind=kind: _entity_sentence(b, kind, genre))
            else:
                _line(b, genre, kind, lambda kind=kind: b.negative(kind, negative(rng, kind)))
        if genre == "json":
            b.add('  "confirm": true\n}}')
        return Sample("".join(b.parts), tuple(b.labels), tuple(b.negatives), genre)
    first, last = values.person(rng)

    def signer(marker: str) -> None:
        b.labelled("name", first if marker == "first" else f"{first} {last}", marker)

    if genre == "email":
        b.sentence(rng.choice(GREETINGS), signer)
        b.add("\n\n")
    sentences: list[tuple[str, str]] = items + [("filler", "")] * rng.randint(0, 2)
    rng.shuffle(sentences)
    for what, kind in sentences:
        if what == "entity":
            _entity_sentence(b, kind, genre)
        elif what == "negative":
            template = rng.choice(NEGATIVES[kind])
            b.sentence(template, lambda _m, kind=kind: b.negative(kind, negative(rng, kind)))
        else:
            b.add(rng.choice(FILLER))
        b.add(" " if genre == "email" else rng.choice([" ", "\n"]))
    if genre == "email":
        b.add("\n\n")
        b.sentence(rng.choice(SIGNOFFS), signer)
    return Sample("".join(b.parts), tuple(b.labels), tuple(b.negatives), genre)


def generate(count: int = 2000, seed: int = 20240601) -> list[Sample]:
    """`count` labelled samples, the same for the same seed."""
    rng = random.Random(seed)
    return [_sample(rng) for _ in range(count)]
