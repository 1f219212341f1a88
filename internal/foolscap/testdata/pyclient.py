"""Python foolscap peer for foolscap_interop_test.go.

Usage: pyclient.py FURL CERTFILE MODE [PLAINFURL]
  MODE "full": exercise the introducer-shaped API, print JSON lines.
  PLAINFURL names an object without a RemoteInterface.
  MODE "hang": connect, publish, print READY, then wait to be killed.

It defines RemoteInterfaces shaped like Tahoe-LAFS 1.20's introducer ones,
so foolscap checks our answers and calls against the same schemas.
"""
import json
import sys

from twisted.internet import reactor, defer
from foolscap.api import (Tub, Referenceable, RemoteInterface, SetOf, DictOf,
                          Any)

class RIIntroducerSubscriberClient_v2(RemoteInterface):
    __remote_name__ = "RIIntroducerSubscriberClient_v2.tahoe.allmydata.com"
    def announce_v2(announcements=SetOf(Any())):
        return None

class RIIntroducerPublisherAndSubscriberService_v2(RemoteInterface):
    __remote_name__ = "RIIntroducerPublisherAndSubscriberService_v2.tahoe.allmydata.com"
    def get_version():
        return DictOf(bytes, Any())
    def publish_v2(announcement=Any(), canary=Referenceable):
        return None
    def subscribe_v2(subscriber=RIIntroducerSubscriberClient_v2,
                     service_name=bytes, subscriber_info=DictOf(bytes, Any())):
        return None

def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()

def b(x):
    return x.decode("latin-1") if isinstance(x, bytes) else x

def describe(v):
    if isinstance(v, bytes):
        return {"bytes": b(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, bool) or v is None or isinstance(v, (int, float)):
        return v
    if isinstance(v, tuple):
        return {"tuple": [describe(i) for i in v]}
    if isinstance(v, list):
        return {"list": [describe(i) for i in v]}
    if isinstance(v, (set, frozenset)):
        return {"set": sorted([json.dumps(describe(i), sort_keys=True) for i in v])}
    if isinstance(v, dict):
        return {"dict": sorted([[json.dumps(describe(k), sort_keys=True), describe(x)] for k, x in v.items()])}
    return {"repr": type(v).__name__}

class Subscriber(Referenceable):
    def __init__(self):
        self.got = defer.Deferred()
    def remote_announce_v2(self, announcements):
        for ann in announcements:
            if ann[0] == b"boom":
                raise ValueError("subscriber exploded")
        out(event="announce_v2", anns=describe(announcements),
            types=sorted(type(a).__name__ for a in announcements))
        if not self.got.called:
            self.got.callback(None)
        return None

from zope.interface import implementer
Subscriber = implementer(RIIntroducerSubscriberClient_v2)(Subscriber)

class Err(object):
    def __init__(self, f):
        self.f = f
        self.type = str(getattr(f, "type", ""))
        self.value = str(getattr(f, "value", ""))
        self.text = "%s: %s | %s" % (self.type, self.value, f)

def safe(d):
    """inlineCallbacks cannot re-raise a CopiedFailure on py3: return an Err."""
    return d.addErrback(Err)

def must(step, res):
    if isinstance(res, Err):
        raise RuntimeError("%s failed: %s" % (step, res.text))
    return res

@defer.inlineCallbacks
def full(tub, furl, plainfurl):
    rref = yield tub.getReference(furl)
    out(event="connected", iface=str(rref.tracker.interfaceName))
    version = must("get_version", (yield safe(rref.callRemote("get_version"))))
    out(event="version", version=describe(version))
    ann_t = (b'{"service-name": "storage"}', b"v0-sig", b"v0-key")
    canary = Referenceable()
    res = must("publish", (yield safe(rref.callRemote("publish_v2", ann_t, canary))))
    out(event="published", result=describe(res))
    sub = Subscriber()
    info = {b"version": 0, b"nickname": "n\u00efck", b"app-versions": [],
            b"my-version": b"tahoe-lafs/1.20", b"oldest-supported": b"1.0"}
    res = must("subscribe", (yield safe(rref.callRemote("subscribe_v2", sub, b"storage", info))))
    out(event="subscribed", result=describe(res))
    yield sub.got
    # same canary again: foolscap sends only the clid the second time
    res = must("publish2", (yield safe(rref.callRemote("publish_v2", ann_t, canary))))
    out(event="published2", result=describe(res))
    # errors raised by the Go side
    res = yield safe(rref.callRemote("publish_v2", (b"bad", b"", b""), canary))
    if isinstance(res, Err):
        out(event="error", ok=True, type=res.type, value=res.value,
            copied=type(res.f).__name__, check=bool(res.f.check(Exception)))
    else:
        out(event="error", ok=False)
    # unknown method, bypassing the local schema check
    # a reference without a RemoteInterface: no local schema check
    plain = must("plain", (yield safe(tub.getReference(plainfurl))))
    res = yield safe(plain.callRemote("no_such_method", 1, x=b"y"))
    out(event="unknown", ok=isinstance(res, Err), text=getattr(res, "text", ""))
    # bad swissnum
    res = yield safe(tub.getReference(furl.rsplit("/", 1)[0] + "/nonexistent"))
    out(event="badname", ok=isinstance(res, Err), text=getattr(res, "text", ""))
    # the Go side calls back with a failing announcement, then reports
    res = must("trigger", (yield safe(rref.callRemote("publish_v2", (b"trigger", b"", b""), canary))))
    out(event="trigger", result=describe(res))
    out(event="done")

@defer.inlineCallbacks
def hang(tub, furl, plainfurl):
    rref = yield tub.getReference(furl)
    must("publish", (yield safe(rref.callRemote("publish_v2", (b"x", b"y", b"z"), Referenceable()))))
    out(event="READY")

def main():
    furl, certfile, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    tub = Tub(certFile=certfile)
    if mode == "full":
        # with a location, foolscap sends a FURL with each new my-reference
        tub.setLocation("tcp:127.0.0.1:9")
    tub.startService()
    out(event="tubid", tubid=tub.getTubID())
    f = full if mode == "full" else hang
    d = f(tub, furl, sys.argv[4] if len(sys.argv) > 4 else None)
    def _err(fail):
        out(event="fatal", text=str(fail.getTraceback()))
    d.addErrback(_err)
    if mode == "full":
        d.addBoth(lambda _: reactor.callLater(0, reactor.stop))
    reactor.callLater(30, reactor.stop)
    reactor.run()

if __name__ == "__main__":
    main()
