"""``rejection-fhir preview``: local preview of built worksheets, rendered by LHC-Forms in a browser.

``rejection-fhir preview`` serves each built Questionnaire as a page on which a clinician or
author fills the worksheet exactly as a client would, and can see the QuestionnaireResponse
LHC-Forms makes of it.  The browser tests drive the same pages, so what they check is what
a person sees.

Everything is served from this machine: the LHC-Forms build that ``rejection-fhir preview
--install-lforms`` (or, in a checkout, ``scripts/install-lforms``) unpacks (the user's cache
folder, ``.web/lforms`` or ``$RFHIR_LFORMS_DIR``) and pages made here.  A Content Security
Policy of ``'self'`` keeps it that way, so a page that works here works offline.

The server binds to loopback only and answers only requests addressed to a loopback host
name: it has no authentication, and a DNS-rebinding page on the web must not be able to
reach it.  Answers typed into a form stay in the browser; no request carries them back.

Parts: :mod:`.page` renders the pages, :mod:`.server` answers requests on loopback,
:mod:`.lforms_install` fetches the pinned LHC-Forms; :mod:`rejection_fhir.commands.preview`
puts them together for the command.
"""
