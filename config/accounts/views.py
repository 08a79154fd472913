"""Second-factor pages: verify after the password, set up an app or a passkey, recovery
codes, remove a device. Thin: validate with a form, call one function of `devices`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from config.accounts import devices
from config.accounts.forms import (
    AppCodeForm,
    DeviceRemoveForm,
    PasswordForm,
    RecoveryCodeForm,
    first_error,
)
from config.accounts.passkeys import passkeys_possible
from config.accounts.second_factor import (
    Step,
    next_step,
    session_verified,
    standing_refresh,
)
from config.accounts.step_up import step_up_record
from temporal_worker.contracts.errors import UserError

TOTP_KEY_SESSION_KEY = "accounts.totp_setup_key"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


async def _user(request: HttpRequest) -> AbstractBaseUser:
    user = await request.auser()
    assert isinstance(user, AbstractBaseUser)  # every view here requires a login
    return user


def safe_next(request: HttpRequest, default: str = "") -> str:
    """`next` from the form or the query, if it stays on this site."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def with_next(url: str, next_url: str) -> str:
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _done(request: HttpRequest) -> HttpResponseRedirect:
    return redirect(safe_next(request) or resolve_url(settings.LOGIN_REDIRECT_URL))


async def _may_manage(request: HttpRequest, user: AbstractBaseUser) -> bool:
    """Devices may change in a verified session, or while there is none to verify with
    (enrolment): never on the password alone when a device exists."""
    if session_verified(user):
        return True
    standing = await standing_refresh(request, user)
    return not (standing.primary or standing.recovery)


def _verify_redirect(request: HttpRequest) -> HttpResponseRedirect:
    return redirect(with_next(reverse("accounts:verify"), request.get_full_path()))


# --- verify after the password -------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
async def verify(request: HtmxHttpRequest) -> HttpResponse:
    user = await _user(request)
    standing = await standing_refresh(request, user)
    step = next_step(user, standing)
    if step is Step.ENROL:
        return redirect(with_next(reverse("accounts:second-factor"), safe_next(request)))
    if step is Step.PASSED:
        return _done(request)
    app_form, recovery_form = AppCodeForm(), RecoveryCodeForm()
    error: UserError | str | None = None
    if request.method == "POST":
        if request.POST.get("method") == "recovery":
            recovery_form = RecoveryCodeForm(request.POST)
            form: AppCodeForm | RecoveryCodeForm = recovery_form
            check = devices.recovery_code_verify
        else:
            app_form = AppCodeForm(request.POST)
            form, check = app_form, devices.totp_verify
        if not form.is_valid():
            error = first_error(form)
        else:
            try:
                await sync_to_async(check)(request, user=user, code=form.cleaned_data["code"])
            except UserError as err:
                error = err
            else:
                # More rights than after the password alone: a new session id.
                await request.session.acycle_key()
                return _done(request)
    context: dict[str, Any] = {
        "standing": standing,
        "has_app": await devices.has_app(user=user),
        "has_passkey": await devices.has_passkey(user=user),
        "passkeys_possible": passkeys_possible(request),
        "app_form": app_form,
        "recovery_form": recovery_form,
        "error": error,
        "next": safe_next(request),
    }
    return TemplateResponse(request, "accounts/verify.html", context, status=422 if error else 200)


# --- step-up before an approval a policy guards (reviews.step_up) -------------------------


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
async def step_up(request: HtmxHttpRequest) -> HttpResponse:
    """Prove it is you again, moments before a large approval: a code from the app, a
    recovery code, or the password for an account without a second factor (refused when
    a second factor is required of it)."""
    user = await _user(request)
    standing = await standing_refresh(request, user)
    has_device = standing.primary or standing.recovery
    password_allowed = not has_device and not settings.REQUIRE_SECOND_FACTOR
    app_form, recovery_form, password_form = AppCodeForm(), RecoveryCodeForm(), PasswordForm()
    error: UserError | str | None = None
    if request.method == "POST":
        method = request.POST.get("method")
        if method == "password" and password_allowed:
            password_form = PasswordForm(request.POST)
            if not password_form.is_valid():
                error = first_error(password_form)
            elif await sync_to_async(_password_right)(
                request, user, password_form.cleaned_data["password"]
            ):
                await step_up_record(request, user=user, method="password")
                return _done(request)
            else:
                error = "That password is not right."
        elif method in ("app", "recovery") and has_device:
            form: AppCodeForm | RecoveryCodeForm
            if method == "recovery":
                recovery_form = form = RecoveryCodeForm(request.POST)
                check, recorded = devices.recovery_code_verify, "recovery_code"
            else:
                app_form = form = AppCodeForm(request.POST)
                check, recorded = devices.totp_verify, "totp"
            if not form.is_valid():
                error = first_error(form)
            else:
                try:
                    await sync_to_async(check)(request, user=user, code=form.cleaned_data["code"])
                except UserError as err:
                    error = err
                else:
                    await step_up_record(request, user=user, method=recorded)
                    return _done(request)
        else:
            error = "Use one of the ways this page offers."
    context: dict[str, Any] = {
        "standing": standing,
        "has_app": await devices.has_app(user=user),
        "has_device": has_device,
        "password_allowed": password_allowed,
        "app_form": app_form,
        "recovery_form": recovery_form,
        "password_form": password_form,
        "error": error,
        "next": safe_next(request),
        "minutes": settings.STEP_UP_MAX_AGE_SECONDS // 60,
    }
    return TemplateResponse(request, "accounts/step_up.html", context, status=422 if error else 200)


def _password_right(request: HttpRequest, user: AbstractBaseUser, password: str) -> bool:
    # Through authenticate(), so login throttling (django-axes) counts a wrong one.
    checked = authenticate(request, username=user.get_username(), password=password)
    return checked is not None and checked.pk == user.pk


# --- the overview: devices, passkeys, recovery codes -----------------------------------------


@never_cache
@require_http_methods(["GET"])
@login_required
async def second_factor(request: HtmxHttpRequest) -> HttpResponse:
    user = await _user(request)
    if not await _may_manage(request, user):
        return _verify_redirect(request)
    standing = await standing_refresh(request, user)
    rows = await sync_to_async(devices.devices_list)(
        user=user, session_device=getattr(user, "otp_device", None)
    )
    context = {
        "standing": standing,
        "enrol": next_step(user, standing) is Step.ENROL,
        "required": settings.REQUIRE_SECOND_FACTOR,
        "rows": rows,
        "recovery_left": await devices.recovery_codes_left(user=user),
        "passkeys_possible": passkeys_possible(request),
        "next": safe_next(request),
    }
    return TemplateResponse(request, "accounts/second_factor.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
async def totp_setup(request: HtmxHttpRequest) -> HttpResponse:
    user = await _user(request)
    if not await _may_manage(request, user):
        return _verify_redirect(request)
    key = await request.session.aget(TOTP_KEY_SESSION_KEY)
    if not key:
        key = devices.totp_key_new()
        await request.session.aset(TOTP_KEY_SESSION_KEY, key)
    form = AppCodeForm(request.POST or None)
    error: UserError | str | None = None
    if request.method == "POST":
        if not form.is_valid():
            error = first_error(form)
        else:
            try:
                await sync_to_async(devices.totp_confirm)(
                    request, user=user, key=key, code=form.cleaned_data["code"]
                )
            except UserError as err:
                error = err
            else:
                await request.session.apop(TOTP_KEY_SESSION_KEY)
                await request.session.acycle_key()
                return await _after_enrolment(request, user)
    device = devices.totp_device_unsaved(user=user, key=key)
    context = {
        "qr_svg": devices.totp_qr_svg(device),
        "secret": devices.totp_secret(device),
        "form": form,
        "error": error,
        "next": safe_next(request),
    }
    return TemplateResponse(
        request, "accounts/totp_setup.html", context, status=422 if error else 200
    )


async def _after_enrolment(request: HttpRequest, user: AbstractBaseUser) -> HttpResponse:
    """First device: recovery codes are made now and shown once on their page."""
    await standing_refresh(request, user)
    if not await devices.recovery_codes_left(user=user):
        await sync_to_async(devices.recovery_codes_regenerate)(user=user)
    return redirect(with_next(reverse("accounts:recovery-codes"), safe_next(request)))


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
async def recovery_codes(request: HtmxHttpRequest) -> HttpResponse:
    user = await _user(request)
    if not session_verified(user):
        return _verify_redirect(request)
    if request.method == "POST":
        await sync_to_async(devices.recovery_codes_regenerate)(user=user)
        await standing_refresh(request, user)
        return redirect(with_next(reverse("accounts:recovery-codes"), safe_next(request)))
    standing = await standing_refresh(request, user)
    context = {
        "codes": await sync_to_async(devices.recovery_codes)(user=user),
        "has_primary": standing.primary,
        "next": safe_next(request),
    }
    return TemplateResponse(request, "accounts/recovery_codes.html", context)


@require_POST
@login_required
async def passkey_registered(request: HtmxHttpRequest) -> HttpResponse:
    """Where the passkey script goes once a passkey is saved (django-otp-webauthn's own
    endpoint saved it and verified this session with it)."""
    user = await _user(request)
    if not session_verified(user):
        return _verify_redirect(request)
    return await _after_enrolment(request, user)


@require_POST
@login_required
async def device_remove(request: HtmxHttpRequest) -> HttpResponse:
    user = await _user(request)
    if not session_verified(user):
        return _verify_redirect(request)
    form = DeviceRemoveForm(request.POST)
    if not form.is_valid():
        raise UserError(first_error(form))
    await sync_to_async(devices.device_remove)(
        user=user,
        persistent_id=form.cleaned_data["device"],
        session_device=getattr(user, "otp_device", None),
    )
    await standing_refresh(request, user)
    return redirect("accounts:second-factor")
