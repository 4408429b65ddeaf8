"""Post a message to a Mailman list the way an MTA hands it over: LMTP to Mailman's LMTP runner.

    python3 lmtp_post.py --port PORT --sender ADDR --list LIST --subject TEXT --body TEXT

Exits non-zero with one line on stderr when Mailman refuses the message.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
from email.message import EmailMessage
from email.utils import make_msgid


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sender", required=True)
    parser.add_argument("--name", default="")
    parser.add_argument("--list", required=True)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--body", required=True)
    args = parser.parse_args()
    msg = EmailMessage()
    msg["From"] = f"{args.name} <{args.sender}>" if args.name else args.sender
    msg["To"] = args.list
    msg["Subject"] = args.subject
    msg["Message-ID"] = make_msgid(domain="privacy-checks.example")
    msg.set_content(args.body)
    try:
        with smtplib.LMTP(args.host, args.port, timeout=10) as lmtp:
            refused = lmtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        print(f"LMTP {args.host}:{args.port} refused the post to {args.list}: {exc}", file=sys.stderr)
        return 1
    if refused:
        print(f"LMTP {args.host}:{args.port} refused the post for {refused}", file=sys.stderr)
        return 1
    print('{"posted": true}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
