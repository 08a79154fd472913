// Once django-otp-webauthn's script has saved a new passkey, go on the way a form would:
// the server makes recovery codes if there are none and shows them.
document.addEventListener("otp_webauthn.register_complete", () => {
  document.getElementById("passkey-registered-form")?.submit();
});
