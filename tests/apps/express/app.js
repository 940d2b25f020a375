// A small Express shop with the cookies a real one sets: express-session's `connect.sid`, which
// keeps the login, the cart, csrf-sync's token (Synchroniser Token Pattern: the token lives in
// the session) and connect-flash's messages.
//
// It follows the packages' own documentation:
// - express-session: https://github.com/expressjs/session#readme (the default cookie name
//   `connect.sid`, a MemoryStore, `resave: false`, `saveUninitialized: false`);
// - csrf-sync: https://github.com/Psifi-Solutions/csrf-sync#readme ("Getting Started", with
//   `getTokenFromRequest` reading the form field as its FAQ shows for HTML forms);
// - connect-flash: https://github.com/jaredhanson/connect-flash#readme;
// - Express 5: https://expressjs.com/en/5x/api.html.
//
// Run: `node app.js` serves on 127.0.0.1 on a free port and prints `listening on PORT`. The one
// user is alice / wonderland.
"use strict";

const crypto = require("node:crypto");
const express = require("express");
const session = require("express-session");
const flash = require("connect-flash");
const { csrfSync } = require("csrf-sync");

const { csrfSynchronisedProtection, generateToken } = csrfSync({
  getTokenFromRequest: (req) => (req.body ? req.body._csrf : undefined),
});

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    secret: process.env.SECRET_KEY || crypto.randomBytes(24).toString("hex"),
    resave: false,
    saveUninitialized: false,
  }),
);
app.use(flash());

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(req, title, body) {
  const flashes = req.flash("info").map((m) => `<li>${escape(m)}</li>`).join("");
  const who = req.session.user ? `logged in as ${escape(req.session.user)}` : "anonymous";
  return `<!doctype html>
<html><head><title>${escape(title)}</title></head>
<body>
<ul id="flashes">${flashes}</ul>
<p id="who">${who}</p>
<h1>${escape(title)}</h1>
${body}
</body></html>`;
}

function csrfField(req) {
  return `<input type="hidden" name="_csrf" value="${escape(generateToken(req))}">`;
}

app.get("/", (req, res) => {
  res.send(page(req, "Home", '<p><a href="/login" id="login">Log in</a></p>'));
});

app.get("/login", (req, res) => {
  res.send(
    page(
      req,
      "Log in",
      `<form method="post" action="/login" id="form">
  ${csrfField(req)}
  <p><label for="username">Username</label> <input id="username" name="username"></p>
  <p><label for="password">Password</label> <input id="password" name="password" type="password"></p>
  <button type="submit" id="submit">Log in</button>
</form>`,
    ),
  );
});

// Every route after this line needs the token on POST.
app.use(csrfSynchronisedProtection);

app.post("/login", (req, res, next) => {
  if (req.body.username !== "alice" || req.body.password !== "wonderland") {
    req.flash("info", "Wrong user name or password.");
    return res.redirect("/login");
  }
  // A new session id at login, as the express-session README's login example does.
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = "alice";
    req.session.cart = 0;
    req.flash("info", "Welcome back, alice!");
    req.session.save((err) => (err ? next(err) : res.redirect("/account")));
  });
});

function loggedIn(req, res, next) {
  if (!req.session.user) {
    req.flash("info", "Please log in to see this page.");
    return res.redirect("/login");
  }
  next();
}

app.get("/account", loggedIn, (req, res) => {
  const n = req.session.cart || 0;
  res.send(
    page(
      req,
      `Account of ${req.session.user}`,
      `<p id="cart">Cart: ${n} item${n === 1 ? "" : "s"}</p>
<form method="post" action="/cart" id="cart-form">
  ${csrfField(req)}
  <button type="submit" id="add">Add to cart</button>
</form>
<form method="post" action="/logout" id="logout-form">
  ${csrfField(req)}
  <button type="submit" id="logout">Log out</button>
</form>`,
    ),
  );
});

app.post("/cart", loggedIn, (req, res) => {
  req.session.cart = (req.session.cart || 0) + 1;
  req.flash("info", "Added to cart.");
  res.redirect("/account");
});

app.post("/logout", (req, res, next) => {
  req.session.user = null;
  req.session.cart = 0;
  req.flash("info", "You are logged out.");
  req.session.save((err) => (err ? next(err) : res.redirect("/")));
});

// csrf-sync's error (403, code EBADCSRFTOKEN), shown as a page.
app.use((err, req, res, next) => {
  if (err.code !== "EBADCSRFTOKEN") return next(err);
  res
    .status(403)
    .send(
      `<!doctype html><title>CSRF error</title><h1>CSRF error</h1><p id="errors">${escape(err.message)}</p>`,
    );
});

const server = app.listen(0, "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
