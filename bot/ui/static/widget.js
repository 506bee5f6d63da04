/* The patient widget's behaviour: send a message to /api/chat, show the reply as its kind's card, rate it.
 *
 * The server keeps the conversation; this page sends only the patient's message and the session id it was given,
 * and keeps that id in a variable, never in storage. Every element is built with createElement and textContent:
 * no server or patient text is ever parsed as HTML. Served from our origin under a strict CSP (no inline code).
 */
(function () {
  "use strict";

  var CHAT_URL = "/api/chat";
  var FEEDBACK_URL = "/api/feedback";
  var TIMEOUT_MS = 30000;
  var SVG = "http://www.w3.org/2000/svg";
  // Material Design's "thumb up" icon (Apache 2.0); the thumb down is the same shape turned over in CSS.
  var THUMB = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 " +
    "7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

  var config = JSON.parse(document.getElementById("clinicbot-config").textContent);
  var log = document.getElementById("chat");
  var box = document.getElementById("message");
  var sendButton = document.getElementById("send");
  var session = null;  // null until the server starts a conversation and names it
  var busy = false;
  var serial = 0;  // makes each comment box's id unique, for its label

  // ---- building blocks -------------------------------------------------------------------------------------
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A paragraph from strings (as text) and nodes, in order. */
  function para() {
    var p = el("p");
    for (var i = 0; i < arguments.length; i++) {
      var part = arguments[i];
      p.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    }
    return p;
  }

  function link(href, label, className) {
    var a = el("a", className, label);
    a.href = href;
    return a;
  }

  /** A tel: link target: digits and a leading + only (a space breaks some dialers). */
  function tel(number) {
    var kept = String(number).replace(/[^0-9+]/g, "");
    return "tel:" + kept.charAt(0) + kept.slice(1).replace(/\+/g, "");
  }

  /** The booking address if it is a web address; anything else (javascript:, say) is never made a link. */
  function webAddress(url) {
    if (!url) return "";
    try {
      var protocol = new URL(url, window.location.href).protocol;
      return protocol === "https:" || protocol === "http:" ? url : "";
    } catch (error) {
      return "";
    }
  }

  function phoneLink() {
    return link(tel(config.clinicPhone), config.clinicPhone);
  }

  // ---- the clinic's numbers and booking link become tappable inside reply text ----------------------------------
  var TARGETS = (function () {
    var targets = [];
    [config.clinicPhone, config.emergencyNumber].forEach(function (number) {
      if (number && number.trim()) targets.push({text: number, href: tel(number)});
    });
    var booking = webAddress(config.bookingUrl);
    if (booking) targets.push({text: booking, href: booking});
    return targets.sort(function (a, b) { return b.text.length - a.text.length; });  // "9110" before "911"
  })();

  function isDigit(ch) {
    return ch >= "0" && ch <= "9";
  }

  /** Not part of a longer number: "911" inside "19112" stays text. */
  function standsAlone(text, at, length) {
    var before = text.charAt(at - 1);
    return !isDigit(before) && before !== "+" && !isDigit(text.charAt(at + length));
  }

  /** The first target in text from `from` on; where two start at the same place, the longer. */
  function nextTarget(text, from) {
    var best = null;
    TARGETS.forEach(function (target) {
      var at = text.indexOf(target.text, from);
      while (at !== -1 && !standsAlone(text, at, target.text.length)) at = text.indexOf(target.text, at + 1);
      if (at !== -1 && (best === null || at < best.at)) best = {at: at, target: target};
    });
    return best;
  }

  function appendLinked(parent, text) {
    var from = 0;
    for (var found = nextTarget(text, 0); found !== null; found = nextTarget(text, from)) {
      if (found.at > from) parent.appendChild(document.createTextNode(text.slice(from, found.at)));
      parent.appendChild(link(found.target.href, found.target.text));
      from = found.at + found.target.text.length;
    }
    if (from < text.length) parent.appendChild(document.createTextNode(text.slice(from)));
  }

  /** Plain text as paragraphs: blank lines part them, single newlines break lines. */
  function appendParagraphs(parent, text) {
    String(text || "").trim().split(/\n\s*\n/).forEach(function (part) {
      part = part.trim();
      if (!part) return;
      var p = el("p");
      part.split("\n").forEach(function (line, i) {
        if (i > 0) p.appendChild(el("br"));
        appendLinked(p, line);
      });
      parent.appendChild(p);
    });
  }

  // ---- replies -------------------------------------------------------------------------------------------
  function card(name, text, role) {
    var node = el("div", "cb-card " + name);
    if (role) node.setAttribute("role", role);
    appendParagraphs(node, text);
    return node;
  }

  function sourceList(sources) {
    var details = el("details", "cb-sources");
    details.appendChild(el("summary", "", "Sources (" + sources.length + ")"));
    var list = el("ul");
    sources.forEach(function (source) {
      var item = el("li");
      item.appendChild(el("strong", "", source.title));
      item.appendChild(document.createTextNode(" — " + source.section + " "));
      item.appendChild(el("small", "", "(version " + source.version + ", last reviewed " + source.reviewed_on + ")"));
      (source.images || []).forEach(function (image) {
        if (!/^\/images\/[a-z0-9-]+\.svg$/.test(image.url)) return;  // only our own diagrams
        var picture = link(image.url, "Picture: " + image.alt, "cb-picture");
        picture.target = "_blank";
        picture.rel = "noopener";
        item.appendChild(para(picture));
      });
      list.appendChild(item);
    });
    details.appendChild(list);
    return details;
  }

  var RENDER = {
    emergency: function (reply) {
      var node = card("cb-emergency", reply.text, "alert");
      var call = link(tel(config.emergencyNumber), "Call " + config.emergencyNumber + " now", "cb-call");
      node.appendChild(para(call));
      if (reply.rule !== config.crisisRule) {  // after self-harm, the crisis line in the text is the next step
        node.appendChild(para("Then call " + config.clinicName + ": ", phoneLink()));
      }
      return node;
    },
    refer: function (reply) {
      var node = card("cb-refer", reply.text);
      var booking = webAddress(config.bookingUrl);
      if (booking) node.appendChild(para(link(booking, "Book a visit", "cb-book")));
      return node;
    },
    unknown: function (reply) {
      var node = card("cb-unknown", reply.text);
      node.appendChild(para("Ask the clinic: call ", phoneLink(), " (" + config.openingHours + ")"));
      return node;
    },
    out_of_scope: function (reply) {
      return card("cb-refusal", reply.text);
    },
    answer: function (reply) {
      var node = el("div", "cb-answer");
      var sample = (reply.sources || []).some(function (s) { return s.status === "sample"; });
      if (sample) {
        node.appendChild(el("p", "cb-sample", "Sample text: the clinic has not reviewed this yet. Check with the clinic before you rely on it."));
      }
      appendParagraphs(node, reply.text);
      if (reply.sources && reply.sources.length) node.appendChild(sourceList(reply.sources));
      return node;
    }
  };

  function render(reply) {
    return (RENDER.hasOwnProperty(reply.kind) ? RENDER[reply.kind] : RENDER.answer)(reply);
  }

  function notice(text) {
    return card("cb-notice", text, "status");
  }

  // ---- the chat log --------------------------------------------------------------------------------------
  function addRow(from, content) {
    var row = el("div", "cb-row cb-from-" + from);
    row.appendChild(content);
    log.appendChild(row);
    return row;
  }

  /** Show the patient's question at the top of the log, or the end of the log if all of it fits. */
  function scrollTo(row) {
    log.scrollTop = row.offsetTop - 8;
  }

  /** Scroll the log just enough to show all of node (a comment box that opened under the last reply). */
  function reveal(node) {
    var bottom = node.offsetTop + node.offsetHeight + 8;
    if (bottom > log.scrollTop + log.clientHeight) log.scrollTop = bottom - log.clientHeight;
  }

  function patientMessage(text) {
    var bubble = el("div", "cb-message");
    bubble.appendChild(el("span", "cb-sr", "You said: "));
    bubble.appendChild(document.createTextNode(text));
    return bubble;
  }

  function typingIndicator() {
    var node = el("div", "cb-typing");
    var dots = el("span", "", "…");
    dots.setAttribute("aria-hidden", "true");
    node.appendChild(dots);
    node.appendChild(el("span", "cb-sr", "The assistant is answering."));
    return node;
  }

  // ---- talking to the server -----------------------------------------------------------------------------
  /** POST JSON; resolves (never rejects) to {status, body}, status 0 when the server could not be reached. */
  function post(url, payload) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? window.setTimeout(function () { controller.abort(); }, TIMEOUT_MS) : 0;
    return fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(payload),
      credentials: "omit",  // the patient API needs no cookies, and a staff member's stay on their own path
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        return {status: response.status, body: body};
      });
    }, function () {
      return {status: 0, body: null};
    }).then(function (result) {
      window.clearTimeout(timer);
      return result;
    });
  }

  /** The server's own sentence for a refusal the patient can act on; otherwise, how to reach the clinic. */
  function problem(result) {
    var said = result.body && typeof result.body.error === "string" ? result.body.error : "";
    if ((result.status === 400 || result.status === 429) && said) return said;
    return "The assistant can't answer right now. Please call " + config.clinicName + " at " +
      config.clinicPhone + ", or try again in a few minutes.";
  }

  function setBusy(value) {
    busy = value;
    sendButton.setAttribute("aria-disabled", String(value));
  }

  /** Nothing typed is lost: an unanswered message goes back in the box, before anything typed since. */
  function putBack(text) {
    box.value = box.value ? text + "\n" + box.value : text;
  }

  function send() {
    var text = box.value;
    box.focus();
    if (busy || !text.trim()) return;
    setBusy(true);
    box.value = "";
    var asked = addRow("patient", patientMessage(text));
    var typing = addRow("bot", typingIndicator());
    scrollTo(asked);
    post(CHAT_URL, {message: text, session: session}).then(function (result) {
      typing.remove();
      if (result.status === 200 && result.body && typeof result.body.text === "string") {
        session = result.body.session || session;
        showReply(result.body);
      } else {
        asked.appendChild(el("span", "cb-unsent-note", "Not sent"));
        putBack(text);
        addRow("bot", notice(problem(result)));
      }
      scrollTo(asked);
      setBusy(false);
    });
  }

  function showReply(reply) {
    var row = addRow("bot", render(reply));
    if (reply.reply_id) row.appendChild(feedbackControls(reply.reply_id));
  }

  // ---- thumbs up or down, then an optional comment ---------------------------------------------------------
  function thumb(label, className) {
    var button = el("button", "cb-rate " + className);
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.setAttribute("aria-pressed", "false");
    var icon = document.createElementNS(SVG, "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", THUMB);
    icon.appendChild(path);
    button.appendChild(icon);
    return button;
  }

  function feedbackControls(replyId) {
    var group = el("div", "cb-feedback");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Was this reply helpful?");
    var up = thumb("Helpful", "cb-up");
    var down = thumb("Not helpful", "cb-down");
    var form = el("div", "cb-comment");
    form.hidden = true;
    var comment = el("textarea");
    comment.id = "cb-comment-" + (++serial);
    comment.rows = 2;
    comment.maxLength = config.maxMessageChars;
    var label = el("label", "", "Tell us more (optional)");
    label.htmlFor = comment.id;
    var sendComment = el("button", "cb-feedback-send", "Send feedback");
    sendComment.type = "button";
    var status = el("p", "cb-feedback-status");
    status.setAttribute("role", "status");
    var rated = null;  // the helpful value the server has stored, once it has
    var pending = false;

    function press(helpful) {
      up.setAttribute("aria-pressed", String(helpful === true));
      down.setAttribute("aria-pressed", String(helpful === false));
    }

    function rate(helpful) {
      if (pending || rated === helpful) return;
      pending = true;
      press(helpful);
      post(FEEDBACK_URL, {reply_id: replyId, helpful: helpful}).then(function (result) {
        pending = false;
        if (result.status === 200) {
          rated = helpful;
          status.textContent = "Thanks for your rating.";
          form.hidden = false;
          reveal(group);
        } else {
          press(rated);
          status.textContent = "Sorry, your rating could not be saved right now. Please try again later.";
        }
      });
    }

    function sendFeedback() {
      var text = comment.value;
      if (pending || rated === null) return;
      if (!text.trim()) {
        status.textContent = "Type a comment first, or just carry on chatting.";
        return;
      }
      pending = true;
      post(FEEDBACK_URL, {reply_id: replyId, helpful: rated, comment: text}).then(function (result) {
        pending = false;
        if (result.status === 200) {
          comment.value = "";
          form.hidden = true;
          (rated ? up : down).focus();  // the box the focus was in is gone
          status.textContent = "Thank you! The clinic team reads every comment.";
        } else {
          var said = result.body && typeof result.body.error === "string" ? result.body.error : "";
          status.textContent = result.status === 400 && said ? said
            : "Your comment could not be saved right now. Please try again later.";
        }
      });
    }

    up.addEventListener("click", function () { rate(true); });
    down.addEventListener("click", function () { rate(false); });
    sendComment.addEventListener("click", sendFeedback);
    comment.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendFeedback();
      }
    });
    form.appendChild(label);
    form.appendChild(comment);
    form.appendChild(sendComment);
    group.appendChild(up);
    group.appendChild(down);
    group.appendChild(form);
    group.appendChild(status);
    return group;
  }

  // ---- wiring ----------------------------------------------------------------------------------------------
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {  // Shift+Enter: a new line
      event.preventDefault();
      send();
    }
  });
  sendButton.addEventListener("click", send);

  // In the clinic site's frame (see embed.py), Escape asks the host page to close the panel.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && window.parent !== window) window.parent.postMessage("clinicbot:close", "*");
  });

  // A browser does not autofocus inside a frame the host page focused before it loaded (embed.js opens the
  // panel that way): when this page has the focus but nothing in it does, the message box takes it.
  function focusBox() {
    if (document.activeElement === document.body || document.activeElement === null) box.focus();
  }
  window.addEventListener("focus", focusBox);
  if (document.hasFocus()) focusBox();
})();
