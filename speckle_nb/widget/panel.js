// The "Sign in to Speckle" panel (anywidget ESM, no build step).
//
// The kernel owns the truth (synced traits: state, user, request, …); the view adds what only
// a browser can know: the sign-in window it opened, whether a popup blocker ate it, whether it
// was closed, and what the callback page said on the "speckle-nb" BroadcastChannel.
// Every text goes in with textContent (or as a Text node): never innerHTML with data.

const CHANNEL = "speckle-nb";
const CLOSED_GRACE_MS = 2500;
// Authorize URLs of the paste and loopback modes, by flow id. They hold the challenge, so
// the kernel sends them as one-off messages and they live only in this page's memory.
const authorizeUrls = new Map();

function jupyterBaseUrl() {
  const node = document.getElementById("jupyter-config-data");
  if (!node) return null;
  try {
    const base = JSON.parse(node.textContent || "{}").baseUrl;
    if (typeof base !== "string" || !base) return null;
    return base.endsWith("/") ? base : `${base}/`;
  } catch {
    return null;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children); // strings become Text nodes
  return node;
}

function isWebUrl(url) {
  return /^https?:\/\//i.test(url || "");
}

function rememberUrls(msg) {
  if (msg && msg.type === "authorize-url" && msg.flow && isWebUrl(msg.url)) {
    authorizeUrls.set(msg.flow, msg.url);
  }
}

function initialize({ model }) {
  // Registered once per model, before any view, so an early message is not lost.
  const onMsg = (msg) => rememberUrls(msg);
  model.on("msg:custom", onMsg);
  return () => model.off("msg:custom", onMsg);
}

function render({ model, el }) {
  const local = {
    flow: model.get("request_id"),
    opened: false, // this view opened the sign-in window for the current flow
    win: null,
    blockedUrl: "", // the popup was blocked: show this as a plain link
    problem: null, // {reason, message, next}: something only the browser saw
    channelSeen: false,
    tokenOpen: false,
    pasteOpen: false,
    pending: false, // a message is on its way; the kernel's answer re-enables the buttons
    lastState: model.get("state"),
    status: null, // GET speckle-nb/status, when the extension answers
  };
  const timers = new Set();
  const send = (type, extra = {}) => model.send({ type, request: model.get("request_id"), ...extra });

  // ---------------------------------------------------------------- the sign-in window

  function signInUrl() {
    const mode = model.get("mode");
    if (mode === "extension") {
      const base = jupyterBaseUrl();
      const path = model.get("start_path");
      return base && path ? new URL(base + path, window.location.href).href : "";
    }
    if (mode === "paste" || mode === "loopback") return authorizeUrls.get(model.get("request_id")) || "";
    return "";
  }

  function stopWatching() {
    for (const t of timers) {
      clearInterval(t);
      clearTimeout(t);
    }
    timers.clear();
    window.removeEventListener("focus", onPageFocus);
  }

  // `win.closed` is also true for a window that is still open but was cut off from this page
  // by a Cross-Origin-Opener-Policy on the sign-in site. A person who really closed it is
  // back on this page, so the notice waits until the page has the focus again.
  let afterFocus = null;
  function onPageFocus() {
    window.removeEventListener("focus", onPageFocus);
    if (afterFocus) afterFocus();
  }

  function whenPageFocused(fn) {
    if (document.hasFocus()) {
      fn();
      return;
    }
    afterFocus = fn;
    window.addEventListener("focus", onPageFocus);
  }

  function watchClosed(win) {
    stopWatching();
    if (model.get("mode") === "paste") return; // closing it is part of the paste flow
    const poll = setInterval(() => {
      if (!win.closed) return;
      stopWatching();
      whenPageFocused(() => {
        const grace = setTimeout(() => {
          timers.delete(grace);
          if (model.get("state") === "signed_in" || local.channelSeen || !local.opened) return;
          local.opened = false;
          local.win = null;
          local.problem = {
            reason: "window-closed",
            message: "The sign-in window was closed before finishing.",
            next: "Click Try again to reopen it.",
          };
          send("window-closed");
          update();
        }, CLOSED_GRACE_MS);
        timers.add(grace);
      });
    }, 1000);
    timers.add(poll);
  }

  // Runs inside the click handler, synchronously: popup blockers allow only that.
  function openSignIn() {
    const url = signInUrl();
    local.problem = null;
    local.channelSeen = false;
    if (!url) {
      local.problem = {
        reason: "not-ready",
        message: "The sign-in address is not ready yet.",
        next: "Wait for the kernel to finish the running cell, then click again.",
      };
      update();
      return;
    }
    // No "noopener" here: with it window.open returns null even when the window opened,
    // and a blocked popup could not be told apart. Cut the opener by hand instead.
    const win = window.open(url, "_blank");
    local.opened = true;
    if (win) {
      try {
        win.opener = null;
      } catch {
        // some browsers forbid it; the callback page does not use the opener anyway
      }
      local.win = win;
      local.blockedUrl = "";
      watchClosed(win);
    } else {
      local.win = null;
      local.blockedUrl = url;
    }
    send("opened", { blocked: !win });
    update();
  }

  function resetLocal() {
    stopWatching();
    Object.assign(local, {
      flow: model.get("request_id"),
      opened: false,
      win: null,
      blockedUrl: "",
      problem: null,
      channelSeen: false,
      pasteOpen: false,
    });
  }

  // ---------------------------------------------------------------- the DOM

  const spinner = h("span", { class: "snb-spinner", "aria-hidden": "true" });
  const heading = h("div", { class: "snb-heading" });
  const body = h("div", { class: "snb-body" });
  const messageLine = h("p", { class: "snb-message", role: "status" });
  const modeLine = h("p", { class: "snb-mode" });
  const admin = h("details", { class: "snb-admin" });
  const root = h("div", { class: "speckle-nb" }, heading, body, messageLine, modeLine, admin);
  el.append(root);

  const tokenInput = h("input", {
    type: "password",
    class: "snb-input",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "Personal access token",
    "aria-label": "Personal access token",
  });
  const pasteInput = h("input", {
    type: "text",
    class: "snb-input",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "https://…?access_code=…",
    "aria-label": "The address your browser landed on",
  });
  const sourceSelect = h("select", { class: "snb-select", "aria-label": "Credentials" });
  const rememberBox = h("input", { type: "checkbox" });
  rememberBox.addEventListener("change", () => {
    model.set("remember", rememberBox.checked);
    model.save_changes();
  });

  function submitSecret(input, type, key) {
    const value = input.value.trim();
    input.value = ""; // the secret leaves the page's DOM at once; it is sent, never stored
    if (!value) return;
    local.pending = true;
    send(type, { [key]: value });
    update();
  }

  const button = (text, onclick, cls = "snb-button") =>
    h("button", { type: "button", class: cls, onclick }, text);
  const linkButton = (text, onclick) => button(text, onclick, "snb-link");

  function serverLabel() {
    return model.get("server_url") || (local.status && local.status.server_url) || "";
  }

  function tokenForm() {
    const server = serverLabel();
    const form = h(
      "form",
      {
        class: "snb-row",
        onsubmit: (event) => {
          event.preventDefault();
          submitSecret(tokenInput, "token", "token");
        },
      },
      tokenInput,
      h("button", { type: "submit", class: "snb-button" }, "Use token"),
    );
    form.lastChild.disabled = local.pending;
    const parts = [form];
    if (isWebUrl(server)) {
      const href = `${server.replace(/\/+$/, "")}/settings/user/developer`;
      parts.push(
        h(
          "p",
          { class: "snb-hint" },
          "Create one under Developer settings on ",
          h("a", { href, target: "_blank", rel: "noopener noreferrer" }, server),
          " (it is sent to the kernel once and not kept in the notebook).",
        ),
      );
    }
    return h("div", { class: "snb-token" }, ...parts);
  }

  function pasteForm(text) {
    const form = h(
      "form",
      {
        class: "snb-row",
        onsubmit: (event) => {
          event.preventDefault();
          submitSecret(pasteInput, "paste-url", "url");
        },
      },
      pasteInput,
      h("button", { type: "submit", class: "snb-button" }, "Finish sign-in"),
    );
    form.lastChild.disabled = local.pending;
    return h("div", { class: "snb-paste" }, h("p", { text }), form);
  }

  function sourcesPicker() {
    const sources = model.get("sources") || [];
    if (!sources.length) return null;
    const chosen = sourceSelect.value;
    sourceSelect.replaceChildren(
      ...sources.map((s) => h("option", { value: String(s.id) }, String(s.label))),
    );
    if (sources.some((s) => String(s.id) === chosen)) sourceSelect.value = chosen;
    return h(
      "div",
      { class: "snb-row snb-sources" },
      h("span", { class: "snb-hint" }, "Or use: "),
      sourceSelect,
      button("Use", () => {
        local.pending = true;
        send("use-source", { id: sourceSelect.value });
        update();
      }),
    );
  }

  // The Speckle server the kernel's own ways sign in to: typed, or picked from the servers
  // signed in to before. (The extension signs in where its administrator allows.)
  const serverInput = h("input", {
    type: "url",
    class: "snb-input snb-server",
    autocomplete: "off",
    spellcheck: "false",
    "aria-label": "Speckle server",
    list: `snb-servers-${Math.random().toString(36).slice(2)}`,
  });
  const serverList = h("datalist", { id: serverInput.getAttribute("list") });

  function serverPicker() {
    const current = model.get("server_url") || "";
    if (document.activeElement !== serverInput) serverInput.value = current;
    serverList.replaceChildren(
      ...(model.get("server_choices") || []).map((url) => h("option", { value: String(url) })),
    );
    const form = h(
      "form",
      {
        class: "snb-row snb-server-picker",
        onsubmit: (event) => {
          event.preventDefault();
          const value = serverInput.value.trim();
          if (!value || value === current) return;
          local.pending = true;
          send("set-server", { server_url: value });
          update();
        },
      },
      h("label", { class: "snb-hint" }, "Speckle server: "),
      serverInput,
      serverList,
      h("button", { type: "submit", class: "snb-button" }, "Change"),
    );
    form.lastChild.disabled = local.pending;
    return form;
  }

  function rememberToggle() {
    rememberBox.checked = Boolean(model.get("remember"));
    return h("label", { class: "snb-remember" }, rememberBox, " Remember me on this computer");
  }

  function viewState() {
    const state = model.get("state");
    if (state === "signed_in") return "signed_in";
    if (local.problem) return "problem";
    if (local.opened) return "waiting"; // also right after Try again, before the kernel answers
    if (state === "error") return "error";
    if (state === "waiting") return "waiting";
    return "idle";
  }

  function idleView() {
    const mode = model.get("mode");
    const server = serverLabel();
    const parts = [];
    if (mode === "token") {
      heading.textContent = server ? `Sign in to ${server} with an access token` : "Sign in with an access token";
      parts.push(tokenForm());
    } else {
      heading.textContent = server ? `Sign in to ${server}` : "Sign in to Speckle";
      const signIn = button("Sign in to Speckle", openSignIn, "snb-button snb-primary");
      signIn.disabled = local.pending;
      parts.push(h("div", { class: "snb-row" }, signIn));
      parts.push(
        local.tokenOpen
          ? tokenForm()
          : linkButton("use an access token instead", () => {
              local.tokenOpen = true;
              update();
            }),
      );
    }
    if (mode !== "extension") parts.push(serverPicker());
    const picker = sourcesPicker();
    if (picker) parts.push(picker);
    parts.push(rememberToggle());
    return parts;
  }

  // Where the browser lands after consent in the paste ways (the page will not load there).
  function landingText() {
    const redirect = model.get("redirect_url_hint");
    if (!redirect) return "the address your browser lands on (it contains access_code=)";
    const shown = /^https?:\/\/[^/?#]+$/i.test(redirect) ? `${redirect}/` : redirect;
    return `the address your browser lands on, ${shown}?access_code=… (that page will not load; this is expected)`;
  }

  function waitingView() {
    const mode = model.get("mode");
    const parts = [];
    heading.textContent = serverLabel() ? `Signing in to ${serverLabel()}` : "Signing in to Speckle";
    if (local.blockedUrl) {
      parts.push(
        h(
          "p",
          { class: "snb-warning" },
          "Your browser blocked the sign-in window. Open it with this link: ",
          h("a", { href: local.blockedUrl, target: "_blank" }, "sign in to Speckle"),
        ),
      );
    } else if (mode !== "paste") {
      parts.push(h("p", { class: "snb-row" }, spinner, "Finish signing in in the new window"));
    }
    if (mode === "paste") {
      parts.push(
        pasteForm(`Sign in in the new window. Then copy ${landingText()} from the address bar and paste it here:`),
      );
    }
    parts.push(
      h(
        "div",
        { class: "snb-row" },
        linkButton("Reopen the sign-in window", openSignIn),
        button("Cancel", () => {
          if (local.win && !local.win.closed) local.win.close();
          send("cancel");
          resetLocal();
          update();
        }),
      ),
    );
    if (model.get("busy")) {
      parts.push(
        h("p", { class: "snb-hint" }, "The cell waits for this sign-in; to stop it, interrupt the kernel."),
      );
    }
    if (mode === "loopback" && model.get("paste_too")) {
      // The kernel cannot tell where the browser runs: listener and paste field together.
      parts.push(pasteForm(`If the window ends on a page that does not load, copy ${landingText()} and paste it here:`));
    } else if (mode === "loopback") {
      parts.push(
        local.pasteOpen
          ? pasteForm("Browser on another computer? Paste the address it landed on:")
          : linkButton("The window shows an error page? Paste its address instead", () => {
              local.pasteOpen = true;
              update();
            }),
      );
    }
    return parts;
  }

  function signedInView() {
    const name = model.get("user_name") || "an unknown user";
    const email = model.get("user_email");
    const who = email ? `${name} (${email})` : name;
    heading.textContent = "Signed in to Speckle";
    const parts = [];
    const avatar = model.get("avatar_url");
    const line = h("p", { class: "snb-row snb-user" });
    if (/^(https?:|data:image\/)/i.test(avatar || "")) {
      line.append(h("img", { class: "snb-avatar", src: avatar, alt: "" }));
    }
    line.append(`Signed in as ${who} on ${model.get("server_url")}`);
    parts.push(line);
    const scopes = model.get("scopes") || [];
    if (scopes.length) {
      parts.push(
        h("details", { class: "snb-scopes" }, h("summary", {}, "Scopes"), h("ul", {}, ...scopes.map((s) => h("li", {}, s)))),
      );
    }
    const signOut = button("Sign out", () => {
      local.pending = true;
      send("sign-out");
      update();
    });
    signOut.disabled = local.pending;
    parts.push(h("div", { class: "snb-row" }, signOut));
    const picker = sourcesPicker();
    if (picker) parts.push(picker);
    parts.push(rememberToggle());
    return parts;
  }

  function errorView(problem) {
    heading.textContent = "Not signed in";
    const again = button("Try again", () => {
      if (model.get("mode") === "token" || model.get("error_reason") === "invalid-token") {
        local.problem = null;
        local.tokenOpen = true;
        send("try-again");
        update();
        return;
      }
      openSignIn();
      send("try-again");
    });
    const parts = [
      h("p", { class: "snb-error" }, problem.message),
      h("p", { class: "snb-next" }, problem.next),
      h("div", { class: "snb-row" }, again),
    ];
    if (model.get("mode") !== "extension") parts.push(serverPicker()); // a mistyped server
    parts.push(
      local.tokenOpen
        ? tokenForm()
        : linkButton("use an access token instead", () => {
            local.tokenOpen = true;
            update();
          }),
    );
    return parts;
  }

  function adminInfo(how) {
    const extension = model.get("mode") === "extension";
    const redirect = extension
      ? (local.status && local.status.redirect_url) || model.get("redirect_url_hint")
      : "";
    const lines = model.get("details") || [];
    admin.hidden = !redirect && !how && !lines.length;
    if (admin.hidden) return;
    admin.replaceChildren(
      h("summary", {}, "details"),
      ...(how ? [h("p", {}, how)] : []),
      ...(lines.length ? [h("ul", { class: "snb-details" }, ...lines.map((l) => h("li", {}, String(l))))] : []),
      ...(redirect
        ? [h("p", {}, "Redirect URL to register for the Speckle app: ", h("code", {}, redirect))]
        : []),
    );
  }

  function update() {
    const view = viewState();
    root.dataset.state = view;
    root.setAttribute("aria-busy", String(Boolean(model.get("busy"))));
    let parts;
    if (view === "signed_in") parts = signedInView();
    else if (view === "waiting") parts = waitingView();
    else if (view === "error")
      parts = errorView({ message: model.get("message"), next: model.get("next_step") });
    else if (view === "problem") parts = errorView(local.problem);
    else parts = idleView();
    body.replaceChildren(...parts);
    const showMessage = view !== "error";
    messageLine.textContent = showMessage ? model.get("message") : "";
    messageLine.hidden = !messageLine.textContent;
    // The usual path needs no explaining; a fallback says up front why it was taken.
    const usual = model.get("mode") === "extension";
    modeLine.textContent = usual ? "" : model.get("mode_reason");
    modeLine.hidden = !modeLine.textContent;
    adminInfo(usual ? model.get("mode_reason") : "");
  }

  // ---------------------------------------------------------------- kernel and page events

  function onChange() {
    if (model.get("request_id") !== local.flow) resetLocal();
    const state = model.get("state");
    if ((state === "signed_in" || state === "error") && state !== local.lastState) {
      stopWatching();
      local.problem = null;
      local.opened = false;
      if (state === "signed_in" && local.win && !local.win.closed) local.win.close();
    }
    local.lastState = state;
    local.pending = false;
    update();
  }
  const traits = ["state", "mode", "mode_reason", "server_url", "user_name", "user_email", "avatar_url",
    "scopes", "message", "error_reason", "next_step", "request_id", "start_path", "redirect_url_hint",
    "remember", "sources", "busy", "details", "paste_too", "builtin_app", "server_choices"];
  for (const t of traits) model.on(`change:${t}`, onChange);
  const onMsg = (msg) => {
    rememberUrls(msg);
    update();
  };
  model.on("msg:custom", onMsg);

  let channel = null;
  if (typeof BroadcastChannel === "function") {
    channel = new BroadcastChannel(CHANNEL);
    channel.onmessage = (event) => {
      const data = event.data || {};
      if (data.type !== "signed-in" && data.type !== "failed") return;
      const mine = data.request === model.get("request_id");
      if (data.request && !mine) return;
      if (!mine && !local.opened) return; // an unnamed failure concerns only a waiting panel
      local.channelSeen = true;
      stopWatching();
      if (data.type === "failed" && !mine) {
        local.opened = false;
        local.problem = {
          reason: String(data.reason || "failed"),
          message: `The sign-in failed in the other window (${String(data.reason || "unknown reason")}).`,
          next: "Click Try again.",
        };
        update();
      }
      send("nudge", { result: data.type });
    };
  }

  async function probe() {
    if (model.get("mode") !== "extension") return;
    const base = jupyterBaseUrl();
    if (base === null) {
      send("no-extension", { why: "this page is not served by a Jupyter server (no jupyter-config-data)" });
      return;
    }
    try {
      const response = await fetch(`${base}speckle-nb/status`, {
        credentials: "same-origin",
        headers: { "X-XSRFToken": cookie("_xsrf"), Accept: "application/json" },
      });
      if (response.status === 404) {
        send("no-extension", { why: "the speckle-nb server extension is not enabled on this Jupyter server" });
        return;
      }
      if (!response.ok) return;
      local.status = await response.json();
      send("extension-status", {
        server_url: String(local.status.server_url || ""),
        redirect_url: String(local.status.redirect_url || ""),
        app_configured: local.status.app_configured !== false,
      });
      update();
    } catch {
      // Offline or blocked by the page's policy: the button may still work, say nothing.
    }
  }

  update();
  send("ready");
  probe();

  return () => {
    stopWatching();
    for (const t of traits) model.off(`change:${t}`, onChange);
    model.off("msg:custom", onMsg);
    if (channel) channel.close();
  };
}

export default { initialize, render };
