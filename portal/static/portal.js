// Roleta's only hand-written script: glue htmx cannot express in markup.
(function () {
  "use strict";
  const token = () => document.querySelector('meta[name="csrf-token"]')?.content;

  // Every htmx request carries the CSRF token as a header.
  document.addEventListener("htmx:config:request", (event) => {
    const t = token();
    if (t) event.detail.ctx.request.headers["X-CSRFToken"] = t;
  });

  // --- The live connection (hx-ws on #live) --------------------------------
  // htmx swaps what the server pushes; we only need the socket to say which
  // offers the agent saw, and its state for the switch's "reconnecting" hint.
  let live = null; // hx-ws's connection object; its .socket changes on reconnect
  const root = document.documentElement;

  document.addEventListener("htmx:ws:after:connection", (event) => {
    live = event.detail.connection;
    root.dataset.socket = "open";
    offers.forEach((entry) => reportSeen(entry));
  });
  document.addEventListener("htmx:ws:close", () => {
    root.dataset.socket = "closed";
  });

  function send(message) {
    const socket = live && live.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  // --- Sound and browser notifications --------------------------------------
  let audio = null;

  function unlockAudio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      audio = audio || new Context();
      if (audio.state === "suspended") audio.resume().catch(() => {});
    } catch (error) {
      audio = null; // no audio device: the notification still tells
    }
  }

  // A short rising two-note chime, synthesised: no audio file to fetch.
  function chime() {
    // Browsers only start audio after the user has interacted with the page;
    // creating a context before that would only log a warning.
    if (!audio && navigator.userActivation && !navigator.userActivation.hasBeenActive) return;
    unlockAudio();
    if (!audio) return;
    const start = audio.currentTime + 0.02;
    [[880, 0], [1318.5, 0.16]].forEach(([frequency, delay]) => {
      const tone = audio.createOscillator();
      const volume = audio.createGain();
      const at = start + delay;
      tone.type = "sine";
      tone.frequency.value = frequency;
      volume.gain.setValueAtTime(0.0001, at);
      volume.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
      volume.gain.exponentialRampToValueAtTime(0.0001, at + 0.35);
      tone.connect(volume).connect(audio.destination);
      tone.start(at);
      tone.stop(at + 0.4);
    });
  }

  function notify(entry) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const el = entry.el;
    const title = el.querySelector("h2")?.textContent.trim() || document.title;
    const body = [...el.querySelectorAll(".offer-facts dd, .offer-message")]
      .map((node) => node.textContent.trim())
      .filter(Boolean)
      .join(" · ");
    try {
      entry.notification = new Notification(title, {
        body,
        tag: "roleta-offer-" + entry.id,
        requireInteraction: true,
      });
      entry.notification.onclick = () => {
        window.focus();
        entry.notification.close();
      };
    } catch (error) {
      // Some mobile browsers only notify from a service worker; the sound
      // and the pop-up remain.
    }
  }

  // The switch is the user gesture that may ask for notifications and
  // unlock audio: asking on page load would be refused (and rude).
  document.addEventListener(
    "click",
    (event) => {
      const button = event.target.closest?.("#presence .presence-switch");
      if (!button) return;
      const turningOn = button.form?.elements.available?.value === "1";
      if (!turningOn) return;
      unlockAudio();
      if ("Notification" in window && Notification.permission === "default") {
        // Older Safari answers through a callback and returns nothing.
        Notification.requestPermission()?.catch?.(() => {});
      }
    },
    true,
  );

  // --- The offer pop-up -----------------------------------------------------
  // Pushed into #offer-tray (pending), replaced by its end state (pushed, or
  // the answer to Accept/Decline). Per offer we keep its deadline measured on
  // this machine's monotonic clock from the seconds the server said were
  // left, so a wrong clock on the agent's computer cannot shorten it.
  const offers = new Map(); // offer id -> {id, el, deadline, seen, ...}
  // Offers this page saw end. A pending copy of one arriving later is stale
  // (a re-send read just before the end, delivered just after it): it must
  // not pop up, ring or notify again.
  const ended = new Set();
  const ENDED_VISIBLE_MS = 4000;
  const TIMED_OUT_GRACE_MS = 8000; // then drop it even if no push came
  let ticker = null;

  function deadlineOf(el) {
    const left = parseFloat(el.dataset.secondsLeft);
    if (Number.isFinite(left)) return performance.now() + left * 1000;
    const expires = Date.parse(el.dataset.expiresAt);
    return performance.now() + (Number.isFinite(expires) ? expires - Date.now() : 0);
  }

  function typing() {
    const active = document.activeElement;
    if (!active || active === document.body) return false;
    return active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  function reportSeen(entry) {
    if (entry.seen || document.hidden || entry.ended) return;
    entry.seen = send({ seen: Number(entry.id) });
  }

  function arrived(entry) {
    if (document.hidden) {
      notify(entry);
      chime();
    } else if (!typing()) {
      // Never steal the caret from a form the agent is filling in.
      entry.el.querySelector("[data-offer-accept]")?.focus();
    }
    reportSeen(entry);
  }

  function leave(el) {
    if (el.dataset.leaving) return;
    el.dataset.leaving = "true";
    setTimeout(() => {
      el.classList.add("offer-leaving");
      setTimeout(() => el.remove(), 300);
    }, ENDED_VISIBLE_MS);
  }

  function end(id) {
    ended.add(id);
    const entry = offers.get(id);
    if (!entry) return;
    entry.ended = true;
    entry.notification?.close();
    offers.delete(id);
  }

  function syncOffers() {
    const tray = document.getElementById("offer-tray");
    if (!tray) return;
    const present = new Set();
    for (const el of tray.querySelectorAll(".offer[data-offer-id]")) {
      const id = el.dataset.offerId;
      if (el.dataset.state !== "pending") {
        end(id);
        leave(el);
        continue;
      }
      if (ended.has(id)) {
        el.remove();
        continue;
      }
      present.add(id);
      let entry = offers.get(id);
      if (entry && entry.el === el) continue;
      const fresh = !entry;
      entry = entry || { id, seen: false };
      // A re-sent offer (after a reconnect) brings a fresh count of seconds.
      entry.el = el;
      entry.deadline = deadlineOf(el);
      entry.timedOutAt = null;
      offers.set(id, entry);
      if (fresh) arrived(entry);
    }
    // An offer replaced by a newer one without an end state pushed first.
    offers.forEach((entry, id) => {
      if (!present.has(id)) end(id);
    });
    tick();
    if (offers.size && !ticker) ticker = setInterval(tick, 250);
  }

  function tick() {
    const now = performance.now();
    offers.forEach((entry, id) => {
      const el = entry.el;
      const msLeft = Math.max(0, entry.deadline - now);
      const seconds = String(Math.ceil(msLeft / 1000));
      const counter = el.querySelector("[data-countdown]");
      if (counter && counter.textContent !== seconds) counter.textContent = seconds;
      const bar = el.querySelector("[data-countdown-bar]");
      if (bar) {
        const total = parseFloat(el.dataset.timeoutSeconds) * 1000 || msLeft || 1;
        bar.style.transform = `scaleX(${Math.min(1, msLeft / total)})`;
      }
      if (msLeft > 0) return;
      if (entry.timedOutAt == null) {
        // The server expires it and pushes the end; until then say so.
        entry.timedOutAt = now;
        el.classList.add("offer-timed-out");
        el.querySelector(".offer-timeout")?.removeAttribute("hidden");
        el.querySelectorAll(".offer-actions button").forEach((b) => (b.disabled = true));
      } else if (now - entry.timedOutAt > TIMED_OUT_GRACE_MS) {
        end(id);
        leave(el);
      }
    });
    if (!offers.size && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) offers.forEach((entry) => reportSeen(entry));
  });

  // --- Pushed notifications (top bar) ----------------------------------------
  const NOTIFICATIONS_KEPT = 5;

  function syncNotifications() {
    const tray = document.getElementById("notification-tray");
    const dismiss = document.getElementById("notification-dismiss");
    if (!tray) return;
    const items = [...tray.querySelectorAll("[data-notification-id]")];
    items
      .slice(NOTIFICATIONS_KEPT)
      .forEach((item) => (item.closest(".notification-item") || item).remove());
    for (const item of items.slice(0, NOTIFICATIONS_KEPT)) {
      if (item.dataset.ready || !dismiss) continue;
      item.dataset.ready = "true";
      const wrapper = document.createElement("div");
      wrapper.className = "notification-item";
      item.replaceWith(wrapper);
      wrapper.append(item, dismiss.content.cloneNode(true));
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest?.(".notification-dismiss");
    if (button) button.closest(".notification-item")?.remove();
  });

  // --- The unread count in the tab's title -----------------------------------
  // The badge (#unread-count) is swapped in whole when the server pushes it;
  // the title, which htmx cannot reach, follows it as "(3) Page · Roleta".
  function syncTitle() {
    const badge = document.getElementById("unread-count");
    if (!badge) return;
    const unread = parseInt(badge.dataset.unread, 10) || 0;
    const bare = document.title.replace(/^\(\d+\) /, "");
    const wanted = unread ? `(${unread}) ${bare}` : bare;
    if (document.title !== wanted) document.title = wanted;
  }

  function watch(id, callback) {
    const el = document.getElementById(id);
    if (!el) return;
    // Swaps come from the socket and from button answers alike (whose
    // source element is gone by the time htmx's events fire): watch the DOM.
    new MutationObserver(callback).observe(el, { childList: true });
    callback();
  }

  function start() {
    watch("offer-tray", syncOffers);
    watch("notification-tray", syncNotifications);
    if (document.getElementById("unread-count")) {
      // The whole body: a boosted navigation replaces the top bar too.
      new MutationObserver(syncTitle).observe(document.body, {
        childList: true,
        subtree: true,
        attributes: true,
        attributeFilter: ["data-unread"],
      });
      syncTitle();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
