"""A stand-in for the founding student app (EstherDev-ops/USSD-SYTEM) in the adapter-mode tests.

This is an independent implementation of that app's texts, not a port of its code: the answers
(byte for byte) are the ones the founding documents record, and those texts are the
specification; how they are built here is this project's own design. Screens come from a table
keyed by the whole AT `text`; each answer is a menu or a listing made by the small functions
below; the records are plain text tables parsed at start-up, kept in memory (no database).

What a client sees is what the founding app shows: no session state (the whole `text` picks
the answer), 200 text/plain always, a number it does not know refused whatever was typed, and
"Invalid option" for any path it has no screen for.

The records are the repository's sample data (config/data/students.yaml), plus two students
whose welcome screen is longer than one USSD screen: a long name (over 182 GSM-7 septets) and a
Kikuyu name with letters outside GSM-7 (over 80 UCS-2 characters).

Run: python3 ussd_system.py  -> prints "listening <port>" once it serves on 127.0.0.1.
"""

from dataclasses import asdict, dataclass, field

from flask import Flask, Response, request
from werkzeug.serving import make_server

# The term the founding app treats as current (it never changes there either).
THIS_TERM = "2024 Term 1"


@dataclass(frozen=True)
class Mark:
    course: str
    code: str
    grade: str
    term: str


@dataclass(frozen=True)
class Lesson:
    day: str
    course: str
    starts: str
    ends: str
    room: str


@dataclass(frozen=True)
class Resit:
    code: str
    course: str
    on: str


@dataclass(frozen=True)
class Account:
    term: str
    due: str
    paid: str
    owed: str


@dataclass(frozen=True)
class Bulletin:
    title: str
    body: str


@dataclass(frozen=True)
class Student:
    name: str
    marks: list = field(default_factory=list)
    accounts: list = field(default_factory=list)
    lessons: list = field(default_factory=list)
    resits: list = field(default_factory=list)


def table(kind, text):
    """Records of `kind` from `text`: one a line, fields in declaration order, split on '|'."""
    rows = []
    for line in text.strip().splitlines():
        rows.append(kind(*(cell.strip() for cell in line.split("|"))))
    return rows


STUDENTS = {
    "254700000001": Student(
        name="Amina Wanjiru",
        marks=table(
            Mark,
            """
            Data Structures             | CS201 | A  | 2024 Term 1
            Discrete Mathematics        | MA202 | B+ | 2024 Term 1
            Operating Systems           | CS204 | B  | 2024 Term 1
            Introduction to Programming | CS101 | A  | 2023 Term 1
            Calculus I                  | MA101 | B  | 2023 Term 1
            Communication Skills        | CM101 | A- | 2023 Term 2
            Computer Organisation       | CS102 | B+ | 2023 Term 2
            Linear Algebra              | MA102 | C+ | 2023 Term 3
            """,
        ),
        accounts=table(Account, "2024 Term 1 | 45000.00 | 30000.00 | 15000.00"),
        lessons=table(
            Lesson,
            """
            Monday    | Data Structures      | 8:00:00  | 10:00:00 | LH 1
            Tuesday   | Discrete Mathematics | 10:00:00 | 12:00:00 | Room B12
            Wednesday | Operating Systems    | 14:00:00 | 16:00:00 | Lab 3
            Thursday  | Technical Writing    | 9:00:00  | 11:00:00 | LH 4
            Friday    | Data Structures      | 11:00:00 | 13:00:00 | Lab 2
            """,
        ),
        resits=table(
            Resit,
            """
            CS204 | Operating Systems    | 2024-04-15
            MA202 | Discrete Mathematics | 2024-04-18
            """,
        ),
    ),
    "254700000002": Student(name="Brian Otieno"),
    "254700000003": Student(
        name="Nyambura Wanjiku Wairimu Gathoni Njeri Muthoni Wangari Nduta Kamau Mwangi"
    ),
    "254700000004": Student(
        name="Wanjĩrũ Mũthoni",
        accounts=table(Account, "2024 Term 1 | 38000.00 | 38000.00 | 0.00"),
    ),
}

BULLETINS = table(
    Bulletin,
    """
    Exam Timetable | End of term exams start on 8 April.
    Fee Deadline   | Clear fee balances by 31 March.
    """,
)


def con(text):
    return "CON " + text


def end(text):
    return "END " + text


def menu(title, *labels):
    """A CON screen: the title, then the labels numbered from 1, one a line."""
    numbered = [f"{n}. {label}" for n, label in enumerate(labels, start=1)]
    return con("\n".join([title, *numbered]))


@dataclass(frozen=True)
class Listing:
    """An END screen listing some of a student's records, or a fixed text when there are none."""

    heading: str  # the first line, with its own punctuation
    row: str  # one record: a str.format template over its fields, line breaks included
    pick: object  # student -> the records to list
    none: str  # the whole answer when there is nothing to list

    def __call__(self, student):
        records = self.pick(student)
        body = "".join(self.row.format(**asdict(r)) for r in records)
        return end(f"{self.heading}\n{body}" if records else self.none)


SCREENS = {
    "": lambda s: menu(
        f"Welcome to UniConnect, {s.name}",
        "View Results",
        "Check Balance",
        "View Timetable",
        "Missed Exams",
        "Notifications",
        "Exit",
    ),
    "1": lambda s: menu("View Results", "Current Term", "Previous Terms"),
    "1*1": Listing(
        heading="Current Term Results:",
        row="{course} ({code}): {grade}, {term}\n",
        pick=lambda s: [m for m in s.marks if m.term == THIS_TERM],
        none="No results found for current term.",
    ),
    "1*2": Listing(
        heading="Previous Term Results:",
        row="{course} ({code}): {grade}, {term}\n",
        pick=lambda s: [m for m in s.marks if m.term != THIS_TERM],
        none="No previous term results found.",
    ),
    "2": Listing(
        heading="Fee Balance",
        row="Term: {term}\nAmount Due: KES {due}\nAmount Paid: KES {paid}\nBalance: KES {owed}\n",
        pick=lambda s: s.accounts[:1],
        none="Balance info not found.",
    ),
    "3": Listing(
        heading="Your Timetable:",
        row="{day}: {course}\n{starts} - {ends} at {room}\n",
        pick=lambda s: s.lessons,
        none="No timetable found.",
    ),
    "4": Listing(
        heading="Missed Exams:",
        row="{code} - {course}\nReschedule: {on}\n\n",
        pick=lambda s: s.resits,
        none="No missed exams found.",
    ),
    "5": Listing(
        heading="Notifications:",
        row="- {title}: {body}\n",
        pick=lambda s: BULLETINS,
        none="You have no new notifications.",
    ),
    "6": lambda s: end("Thank you for using UniConnect. Goodbye!"),
}


def canonical(number):
    """The founding app's key for a number: no '+' nor spaces, a leading 0 read as 254."""
    digits = "".join(c for c in number if c not in "+ ")
    if digits[:1] == "0":
        return "254" + digits[1:]
    return digits


def answer(number, text):
    """The whole answer (CON/END included) for `number` having typed `text` so far."""
    student = STUDENTS.get(canonical(number))
    if student is None:
        return end("Your phone number is not registered. Please contact admin.")
    screen = SCREENS.get(text)
    if screen is None:
        return end("Invalid option. Please try again.")
    return screen(student)


app = Flask(__name__)


@app.post("/ussd")
def callback():
    form = request.form
    body = answer(form.get("phoneNumber", ""), form.get("text", ""))
    return Response(body, status=200, content_type="text/plain")


def main():
    server = make_server("127.0.0.1", 0, app)
    print("listening", server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
