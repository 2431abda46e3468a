// Live view: reload the composite whenever the cloud stores a new frame of this stream (server-sent events).
(function () {
  const img = document.getElementById("composite");
  const status = document.getElementById("live-status");
  const stream = encodeURIComponent(img.dataset.stream);
  const events = new EventSource("/streams/" + stream + "/events");
  function say(text, bad) { status.textContent = text; status.className = bad ? "status bad" : "status"; }
  events.onopen = function () { say("live", false); };
  events.addEventListener("frame", function (e) {
    const d = JSON.parse(e.data);
    const next = new Image();
    next.onload = function () {
      img.src = next.src;
      document.getElementById("frame-index").textContent = d.frame;
      document.getElementById("frame-time").textContent = d.time;
      say("live", false);
    };
    next.onerror = function () { say("frame " + d.frame + ": the composite could not be loaded", true); };
    next.src = "/streams/" + stream + "/composite.png?frame=" + d.frame;
  });
  events.addEventListener("error", function (e) {
    if (e.data) { say(JSON.parse(e.data).error, true); } else { say("connection to the viewer lost; retrying", true); }
  });
})();
