#!/usr/bin/env python3
"""An example Katy skill: a plain HTTP server, in any language, that answers with messages.

Katy POSTs {"event": {...}, "conversation": {...}} and expects
{"messages": ["text" or a Send API message object, ...], "set": {"var": "value"}, "state": "s"}.

  POST /weather   answers with the weather for the city in the text ("weather in Paris")
  POST /broken    always answers 500 (Katy retries once, then sends the rule's fallback)
  POST /slow      answers after 3 s (longer than any sensible skill timeout)
  POST /echo?delay_ms=N   answers "echo: <text>" after N ms: a skill with a known cost, for
                  bench/scale.sh
  POST /agent     hands the conversation to the Page Inbox after its message
  POST /bot       takes the conversation back before its message

Usage: weather_skill.py PORT
"""
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Skill(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/broken":
            return self.answer(500, {"error": "the weather station is on fire"})
        if self.path == "/slow":
            time.sleep(3)
        url = urlsplit(self.path)
        if url.path == "/echo":
            time.sleep(int(parse_qs(url.query).get("delay_ms", ["0"])[0]) / 1000)
            return self.answer(200, {"messages": ["echo: " + body.get("event", {}).get("text", "")]})
        if url.path == "/agent":
            return self.answer(200, {"messages": ["A person will take it from here."],
                                     "handover": {"to": "inbox", "reason": "the skill asked for a person"}})
        if url.path == "/bot":
            return self.answer(200, {"messages": ["The bot again."], "handover": "back"})
        event, conversation = body.get("event", {}), body.get("conversation", {})
        match = re.search(r"weather in (\w+)", event.get("text", ""), re.IGNORECASE)
        city = match.group(1) if match else conversation.get("vars", {}).get("city", "Paris")
        name = conversation.get("first_name") or "friend"
        self.answer(200, {
            "messages": [
                f"It's sunny in {city}, {name}.",
                {"text": "Anything else?", "quick_replies": [
                    {"content_type": "text", "title": "Tomorrow?", "payload": "TOMORROW"}]},
            ],
            "set": {"city": city},
            "state": None,
        })

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Skill).serve_forever()
