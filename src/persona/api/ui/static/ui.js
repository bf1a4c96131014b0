/* persona's dashboard: draws the charts a page describes, and previews a segment rule as it
   is typed. Plain script, no build step; Chart.js is loaded before it. */
(() => {
  "use strict";

  // Each <canvas data-chart="ID"> is drawn from the JSON in <script type="application/json"
  // id="ID">: the server writes the whole Chart.js configuration.
  for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
    const source = document.getElementById(canvas.dataset.chart);
    if (source) {
      new window.Chart(canvas, JSON.parse(source.textContent));
    }
  }

  // The rule editor: after a pause in typing, ask how many people the rule selects now.
  const form = document.querySelector("form[data-preview]");
  const rule = form && form.querySelector("textarea[name=rule]");
  const shown = document.getElementById("segment-preview");
  const sample = document.getElementById("segment-preview-sample");
  if (!form || !rule || !shown || !sample) {
    return;
  }
  let timer = null;
  let asked = 0;

  const person = (ref) => {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = "/ui/people/" + encodeURIComponent(ref.profile_id);
    link.textContent = ref.profile_id;
    item.append(link, ` (${ref.kind})`);
    return item;
  };

  const preview = async () => {
    const text = rule.value.trim();
    const mine = ++asked;
    if (!text) {
      shown.textContent = "Type a rule to see how many people it selects now.";
      shown.classList.remove("failed");
      sample.replaceChildren();
      return;
    }
    shown.textContent = "Counting…";
    let answer;
    let body;
    try {
      answer = await fetch(form.dataset.preview, {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": form.dataset.csrf },
        body: JSON.stringify({ rule: text }),
        credentials: "same-origin",
      });
      body = await answer.json();
    } catch (error) {
      if (mine === asked) {
        shown.textContent = "The preview did not answer.";
        shown.classList.add("failed");
      }
      return;
    }
    if (mine !== asked) {
      return; // a later keystroke asked again
    }
    if (answer.ok) {
      const people = body.size === 1 ? "person matches" : "people match";
      shown.textContent = `${body.size.toLocaleString("en")} ${people} now`;
      shown.classList.remove("failed");
      sample.replaceChildren(...body.sample.map(person));
    } else {
      shown.textContent = body.detail || `The preview failed (${answer.status}).`;
      shown.classList.add("failed");
      sample.replaceChildren();
    }
  };

  rule.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(preview, 350);
  });
  if (rule.value.trim()) {
    preview();
  }
})();
