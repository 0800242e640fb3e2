"""The founding USSD-SYTEM student app (EstherDev-ops/USSD-SYTEM app.py), as an upstream for the
gateway's adapter-mode tests: the same Flask routes, dispatch on the whole `text`, and the same
answers text for text. The MySQL tables are replaced by in-memory rows with the repository's
sample data (config/data/students.yaml), so the test needs no database.

Run: python3 ussd_system.py  -> prints "listening <port>" once it serves on 127.0.0.1.
"""

import sys

from flask import Flask, request
from werkzeug.serving import make_server

app = Flask(__name__)

CURRENT_TERM = "2024 Term 1"

STUDENTS = {
    "254700000001": {
        "full_name": "Amina Wanjiru",
        "results": [
            ("Data Structures", "CS201", "A", "2024 Term 1"),
            ("Discrete Mathematics", "MA202", "B+", "2024 Term 1"),
            ("Operating Systems", "CS204", "B", "2024 Term 1"),
            ("Introduction to Programming", "CS101", "A", "2023 Term 1"),
            ("Calculus I", "MA101", "B", "2023 Term 1"),
            ("Communication Skills", "CM101", "A-", "2023 Term 2"),
            ("Computer Organisation", "CS102", "B+", "2023 Term 2"),
            ("Linear Algebra", "MA102", "C+", "2023 Term 3"),
        ],
        "fees": ("2024 Term 1", "45000.00", "30000.00", "15000.00"),
        "timetable": [
            ("Monday", "Data Structures", "8:00:00", "10:00:00", "LH 1"),
            ("Tuesday", "Discrete Mathematics", "10:00:00", "12:00:00", "Room B12"),
            ("Wednesday", "Operating Systems", "14:00:00", "16:00:00", "Lab 3"),
            ("Thursday", "Technical Writing", "9:00:00", "11:00:00", "LH 4"),
            ("Friday", "Data Structures", "11:00:00", "13:00:00", "Lab 2"),
        ],
        "missed_exams": [
            ("CS204", "Operating Systems", "2024-04-15"),
            ("MA202", "Discrete Mathematics", "2024-04-18"),
        ],
    },
    "254700000002": {
        "full_name": "Brian Otieno",
        "results": [],
        "fees": None,
        "timetable": [],
        "missed_exams": [],
    },
}

NOTIFICATIONS = [
    ("Exam Timetable", "End of term exams start on 8 April."),
    ("Fee Deadline", "Clear fee balances by 31 March."),
]


@app.route("/ussd", methods=["POST"])
def ussd_callback():
    session_id = request.form.get("sessionId")
    service_code = request.form.get("serviceCode")
    phone_number = request.form.get("phoneNumber", "")
    text = request.form.get("text", "")

    # As the founding app: strip "+" and spaces, a leading 0 becomes 254.
    phone = phone_number.replace("+", "").replace(" ", "")
    if phone.startswith("0"):
        phone = "254" + phone[1:]

    student = STUDENTS.get(phone)
    if not student:
        response = "END Your phone number is not registered. Please contact admin."
    elif text == "":
        response = f"CON Welcome to UniConnect, {student['full_name']}\n"
        response += "1. View Results\n2. Check Balance\n3. View Timetable\n4. Missed Exams\n5. Notifications\n6. Exit"
    elif text == "1":
        response = "CON View Results\n1. Current Term\n2. Previous Terms"
    elif text == "1*1":
        rows = [r for r in student["results"] if r[3] == CURRENT_TERM]
        if rows:
            response = "END Current Term Results:\n"
            for name, code, grade, term in rows:
                response += f"{name} ({code}): {grade}, {term}\n"
        else:
            response = "END No results found for current term."
    elif text == "1*2":
        rows = [r for r in student["results"] if r[3] != CURRENT_TERM]
        if rows:
            response = "END Previous Term Results:\n"
            for name, code, grade, term in rows:
                response += f"{name} ({code}): {grade}, {term}\n"
        else:
            response = "END No previous term results found."
    elif text == "2":
        fees = student["fees"]
        if fees:
            term, due, paid, bal = fees
            response = f"END Fee Balance\nTerm: {term}\nAmount Due: KES {due}\nAmount Paid: KES {paid}\nBalance: KES {bal}\n"
        else:
            response = "END Balance info not found."
    elif text == "3":
        rows = student["timetable"]
        if rows:
            response = "END Your Timetable:\n"
            for day, course, start, end, venue in rows:
                response += f"{day}: {course}\n{start} - {end} at {venue}\n"
        else:
            response = "END No timetable found."
    elif text == "4":
        rows = student["missed_exams"]
        if rows:
            response = "END Missed Exams:\n"
            for code, name, date in rows:
                response += f"{code} - {name}\nReschedule: {date}\n\n"
        else:
            response = "END No missed exams found."
    elif text == "5":
        if NOTIFICATIONS:
            response = "END Notifications:\n"
            for title, message in NOTIFICATIONS:
                response += f"- {title}: {message}\n"
        else:
            response = "END You have no new notifications."
    elif text == "6":
        response = "END Thank you for using UniConnect. Goodbye!"
    else:
        response = "END Invalid option. Please try again."

    # The founding app answers 200 text/plain always; session_id and service_code are unused.
    del session_id, service_code
    return response, 200, {"Content-Type": "text/plain"}


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app)
    print(f"listening {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
