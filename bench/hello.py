"""The stack's ceiling: the smallest Flask app, served like the real one."""

from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello():
    return {"hello": "world"}
