// upq's desk: live updates over Server-Sent Events and countdowns. The pages work
// without it; this only keeps them current without a reload.
"use strict";

(() => {
  const page = document.body.dataset.page;

  // Countdowns ("in 4m 12s") tick while some are on the page.
  const compact = (seconds) => {
    const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
    const parts = [];
    for (const [name, size] of units) {
      if (seconds >= size || (name === "s" && parts.length === 0)) {
        parts.push(Math.floor(seconds / size) + name);
        seconds %= size;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  };
  let ticking = null;
  const tick = () => {
    const times = document.querySelectorAll("time.countdown");
    if (times.length === 0) {
      clearInterval(ticking);
      ticking = null;
      return;
    }
    const now = Date.now();
    for (const time of times) {
      const left = Math.round((Date.parse(time.dateTime) - now) / 1000);
      time.textContent =
        left === 0 ? "just now" : left > 0 ? "in " + compact(left) : compact(-left) + " ago";
    }
  };
  const keepTicking = () => {
    if (ticking === null && document.querySelector("time.countdown")) {
      ticking = setInterval(tick, 1000);
    }
  };
  keepTicking();

  const list = document.getElementById("jobs");
  if (!list || !window.EventSource) return;

  const set = (card, selector, text) => {
    const element = card.querySelector(selector);
    if (element) element.textContent = text;
  };
  const empty = () => {
    const note = document.querySelector("p.empty");
    if (note) note.hidden = list.children.length > 0;
  };

  // Replaces what changed of a card. A card that stays in its state keeps its other
  // parts (the preview that plays, the words being typed); only its live part is new.
  const place = (id, html) => {
    const old = document.getElementById("job-" + id);
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const card = template.content.firstElementChild;
    if (!card) return;
    if (!old) {
      list.appendChild(card);
    } else if (old.dataset.state === card.dataset.state) {
      const focused = old.contains(document.activeElement)
        ? document.activeElement.dataset.action
        : null;
      const fresh = card.querySelector(".live");
      const stale = old.querySelector(".live");
      if (fresh && stale) stale.replaceWith(fresh);
      if (focused) {
        const again = old.querySelector(`[data-action="${focused}"]`);
        if (again) again.focus();
      }
    } else {
      const hadFocus = old.contains(document.activeElement);
      old.replaceWith(card);
      if (hadFocus) {
        const first = card.querySelector("button, a.button");
        if (first) first.focus();
      }
    }
    empty();
    keepTicking();
  };

  const waiting = new Set();
  let loading = false;
  const refresh = async (id) => {
    waiting.add(id);
    if (loading) return;
    loading = true;
    try {
      while (waiting.size > 0) {
        const [next] = waiting;
        waiting.delete(next);
        const answer = await fetch(`/cards/${page}/${next}`, { credentials: "same-origin" });
        if (answer.status === 204) {
          const old = document.getElementById("job-" + next);
          if (old) old.remove();
          empty();
        } else if (answer.ok) {
          place(next, await answer.text());
        }
      }
    } finally {
      loading = false;
    }
  };

  // The daemon's line follows the states, a moment after the last change.
  let lineTimer = null;
  const refreshLine = () => {
    clearTimeout(lineTimer);
    lineTimer = setTimeout(async () => {
      const answer = await fetch("/status-line", { credentials: "same-origin" });
      const line = document.getElementById("daemon");
      if (!answer.ok || !line) return;
      const template = document.createElement("template");
      template.innerHTML = (await answer.text()).trim();
      if (template.content.firstElementChild) line.replaceWith(template.content.firstElementChild);
    }, 300);
  };

  const events = new EventSource("/events");
  events.addEventListener("progress", (event) => {
    const data = JSON.parse(event.data);
    const card = document.getElementById("job-" + data.id);
    if (!card) return;
    const bar = card.querySelector("progress");
    if (bar) {
      bar.max = Math.max(1, data.max);
      bar.value = data.value;
    }
    set(card, ".progress-text", data.text);
    set(card, ".speed", data.speed);
    set(card, ".eta", data.eta);
  });
  events.addEventListener("processing", (event) => {
    const data = JSON.parse(event.data);
    const card = document.getElementById("job-" + data.id);
    if (card) set(card, ".reason", "the platform is processing it: " + data.text);
  });
  events.addEventListener("state", (event) => {
    refresh(JSON.parse(event.data).id);
    refreshLine();
  });
  events.addEventListener("removed", (event) => {
    const old = document.getElementById("job-" + JSON.parse(event.data).id);
    if (old) old.remove();
    empty();
    refreshLine();
  });
  // Events were missed: what the page shows may be stale.
  events.addEventListener("lagged", () => window.location.reload());
})();
