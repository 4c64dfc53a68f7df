// Small helpers for building the pages without a framework. Text always goes in as text nodes,
// never as HTML, so names from Telegram cannot inject markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function time(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const d = Math.floor(seconds / 86400), hr = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

export function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  setTimeout(() => { if (box.textContent === text) box.textContent = ""; }, 4000);
}

/// Asks before a consequential action; resolves true when confirmed.
export function confirmAction(question, action) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-label": question },
      h("p", {}, question),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => { dialog.close(); resolve(false); } }, "Cancel"),
        h("button", { type: "button", class: "primary", onclick: () => { dialog.close(); resolve(true); } }, action)));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  });
}

/// Goes to another dashboard page as a link click would.
export function navigate(path) {
  history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

/// A table with a header row; `rows` are <tr> elements, `empty` the text when there are none.
export function table(label, headings, rows, empty) {
  const body = h("tbody", {}, rows);
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: headings.length, class: "empty" }, empty)));
  return h("div", { class: "table-wrap" }, h("table", { "aria-label": label },
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))), body));
}

/// Names each cell of `row` after its column's heading (`data-label`): a table of class `cards`
/// shows one card per row on a phone (app.css), each value under its name. Returns `row`.
export function labelCells(row, headings) {
  [...row.cells].forEach((cell, index) => { cell.dataset.label = headings[index] ?? ""; });
  return row;
}

/// A labelled form control: `control` gets `id` so the label names it.
export function field(id, label, control, hint) {
  control.id = id;
  if (!control.name) control.name = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("div", { class: "muted" }, hint) : null);
}

/// A <select> of `choices` ([value, text] pairs or plain values) with `selected` chosen.
export function select(choices, selected) {
  return h("select", {}, choices.map((choice) => {
    const [value, text] = Array.isArray(choice) ? choice : [choice, choice];
    return h("option", { value, selected: String(value) === String(selected ?? "") }, text);
  }));
}

/// Runs `action()` when `form` is submitted: the browser's own submit is prevented, `error` is
/// cleared first and shows the failure's message (the server's, for an API error) afterwards, and
/// `done` (a toast's text) is shown once the action succeeded. The one way every form submits.
export function onSubmit(form, error, action, done) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const result = await action();
      if (done) toast(typeof done === "function" ? done(result) : done);
    } catch (failure) {
      // An earlier success's toast must not stand beside this failure.
      document.getElementById("toast").textContent = "";
      error.textContent = failure.message;
    }
  });
}
