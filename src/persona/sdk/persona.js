/* persona.js: events, identity and decisions for a web page (docs/browser.md). No dependencies. */
(() => {
  "use strict";
  const ANON = "persona_anonymous_id", USER = "persona_user_id";
  const MAX_QUEUE = 1000; // past it the oldest events go (a page offline for long)
  const MAX_BODY = 60000; // bytes: keepalive requests in flight share 64 KiB a page
  const KEEPALIVE = typeof Request === "function" && "keepalive" in Request.prototype;
  const src = document.currentScript && document.currentScript.src;
  const config = {
    endpoint: src ? new URL(src).origin : location.origin,
    key: "", flushIntervalMs: 5000, decideTimeoutMs: 1000, batchSize: 20,
  };
  let queue = [], ids = null, interval = null;

  // First-party storage: localStorage, or a cookie where storage is off (it may throw).
  const store = {
    get(name) {
      try { const v = localStorage.getItem(name); if (v) return v; } catch (e) {}
      const found = document.cookie.match(new RegExp(`(?:^|; )${name}=([^;]*)`));
      return found ? decodeURIComponent(found[1]) : null;
    },
    set(name, value) {
      try { return localStorage.setItem(name, value); } catch (e) {}
      const secure = location.protocol === "https:" ? "; secure" : "";
      document.cookie = `${name}=${encodeURIComponent(value)}; path=/; max-age=31536000; samesite=lax${secure}`;
    },
    remove(name) {
      try { localStorage.removeItem(name); } catch (e) {}
      document.cookie = `${name}=; path=/; max-age=0`;
    },
  };

  const uuid = () => crypto.randomUUID ? crypto.randomUUID() // in secure contexts only
    : "10000000-1000-4000-8000-100000000000".replace(/[018]/g,
      (c) => (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16));

  const identity = () => {
    if (!ids) {
      let anonymous = store.get(ANON);
      if (!anonymous) store.set(ANON, (anonymous = uuid()));
      ids = { anonymous_id: anonymous, user_id: store.get(USER) };
    }
    return ids.user_id ? Object.assign({}, ids) : { anonymous_id: ids.anonymous_id };
  };

  const post = (path, body, keepalive, signal) => fetch(config.endpoint + path, {
    method: "POST", credentials: "omit", keepalive, signal, body,
    headers: { "content-type": "application/json", authorization: `Bearer ${config.key}` },
  });

  // sendBeacon sets no header: the key goes in the URL, where only a public key is taken.
  const beacon = (body) => !!navigator.sendBeacon && navigator.sendBeacon(
    `${config.endpoint}/v1/events?key=${encodeURIComponent(config.key)}`,
    new Blob([body], { type: "text/plain;charset=UTF-8" }));

  const requeue = (batch) => { queue = batch.concat(queue).slice(-MAX_QUEUE); };

  // Sent again after a network error, 408, 429 or 5xx: the event ids make a retry a duplicate.
  const send = (batch, body, leaving) => {
    if (leaving && !KEEPALIVE && beacon(body)) return Promise.resolve();
    return post("/v1/events", body, KEEPALIVE).then((response) => {
      const status = response.status;
      if (status === 408 || status === 429 || status >= 500) requeue(batch);
      else if (!response.ok) console.warn(`persona: ${batch.length} events refused (${status})`);
    }, () => requeue(batch));
  };

  const flush = (leaving) => {
    const sending = [];
    while (config.key && queue.length) {
      const batch = queue.splice(0, config.batchSize);
      let body = JSON.stringify(batch);
      while (batch.length > 1 && new Blob([body]).size > MAX_BODY) {
        queue.unshift(...batch.splice(batch.length >> 1));
        body = JSON.stringify(batch);
      }
      sending.push(send(batch, body, leaving === true));
    }
    return Promise.all(sending).then(() => {});
  };

  const track = (type, properties, fields) => {
    const event = Object.assign(
      { event_id: uuid(), type, timestamp: new Date().toISOString() }, identity(), fields);
    if (properties) event.properties = properties;
    event.context = Object.assign({ page: location.href, locale: navigator.language }, event.context);
    if (queue.push(event) > MAX_QUEUE) queue.shift();
    if (queue.length >= config.batchSize) flush();
    return event.event_id;
  };

  // The traits travel as the event's properties: a page's key never writes profile traits.
  const identify = (userId, traits) => {
    const anonymous = identity().anonymous_id;
    store.set(USER, (ids.user_id = String(userId)));
    const id = track("identify", traits, { user_id: ids.user_id, anonymous_id: anonymous });
    flush(); // so that the next decision finds the merged profile
    return id;
  };

  const decide = async (placement, options) => {
    const o = options || {};
    const fallback = o.fallback === undefined ? null : o.fallback;
    const abort = new AbortController();
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(resolve, o.timeoutMs >= 0 ? o.timeoutMs : config.decideTimeoutMs, fallback);
    });
    const asked = (async () => {
      const request = Object.assign({ placements: [placement], context: o.context || {} }, identity());
      const response = await post("/v1/decisions", JSON.stringify(request), false, abort.signal);
      if (response.ok) return (await response.json()).decisions[0];
      console.warn(`persona: no decision for ${placement} (${response.status})`);
      return fallback;
    })().catch(() => fallback);
    try {
      return await Promise.race([asked, late]);
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  };

  // An impression once half the element is in view, a click at each click, both carrying the
  // decision id; for an item of a list, its id and position too (what the ranker learns
  // from). Returns a function that stops watching.
  const observe = (element, decision, item) => {
    if (!element || !decision || !decision.decision_id) return () => {};
    const fields = { decision_id: decision.decision_id };
    const properties = { placement: decision.placement, variant: decision.variant };
    if (item && item.item_id) {
      fields.item_id = String(item.item_id);
      if (Number.isInteger(item.position)) properties.position = item.position;
    }
    let seen = false, watcher = null;
    const impression = () => {
      if (seen) return;
      seen = true;
      if (watcher) watcher.disconnect();
      track("impression", properties, fields);
    };
    const click = () => {
      impression();
      track("click", properties, fields);
      flush(); // a click often leaves the page: keepalive carries the request through
    };
    if (typeof IntersectionObserver === "function") {
      watcher = new IntersectionObserver((entries) => entries.some(
        (e) => e.isIntersecting && e.intersectionRatio >= 0.5) && impression(), { threshold: 0.5 });
      watcher.observe(element);
    } else impression();
    element.addEventListener("click", click);
    return () => {
      if (watcher) watcher.disconnect();
      element.removeEventListener("click", click);
    };
  };

  const init = (options) => {
    Object.assign(config, options);
    config.endpoint = String(config.endpoint).replace(/\/+$/, "");
    clearInterval(interval);
    interval = setInterval(() => queue.length && flush(), config.flushIntervalMs);
    flush();
    return window.persona;
  };

  document.addEventListener("visibilitychange", () => document.hidden && flush(true));
  addEventListener("pagehide", () => flush(true));

  window.persona = {
    init, identify, track, decide, observe,
    flush: () => flush(),
    reset: () => { store.remove(USER); store.remove(ANON); ids = null; },
    anonymousId: () => identity().anonymous_id,
    userId: () => identity().user_id || null,
  };
})();
