;;; lsp-mode-test.el --- The README's lsp-mode setup against the real mercury-lsp  -*- lexical-binding: t; -*-

;; Run by tests/editors/test_emacs.py:
;;   emacs --batch -l editors/emacs/lsp-mode-test.el
;; with MERCURY_TEST_MODEL (a model folder) and MERCURY_RUNTIME_DIR set.  Prints one line per test and
;; "N passed, M failed", and exits non-zero on a failure.

(require 'cl-lib)
(require 'subr-x)

(defvar mercury-test-here (file-name-directory (or load-file-name buffer-file-name)))
(defvar mercury-test-repo (expand-file-name "../.." mercury-test-here))
(defvar mercury-test-model (or (getenv "MERCURY_TEST_MODEL") (error "MERCURY_TEST_MODEL is not set")))
(defvar mercury-test-source
  "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return \n\nprint(add(1, 2))\n")
(defvar mercury-test-passed 0)
(defvar mercury-test-failed 0)

(defun mercury-test-readme-setup ()
  "The elisp block after <!-- emacs-setup --> in editors/README.md, with the model path filled in.
The test is about the wire, not about what the model is sure of, so it also asks for every answer
\(minConfidence 0): a small model's answer at the cursor may fall under the default cut."
  (with-temp-buffer
    (insert-file-contents (expand-file-name "editors/README.md" mercury-test-repo))
    (goto-char (point-min))
    (unless (re-search-forward "<!-- emacs-setup -->[ \t\n]*```elisp\n\\(\\(?:.\\|\n\\)*?\\)\n```" nil t)
      (error "editors/README.md has no emacs-setup block"))
    (let ((block (match-string 1)))
      (unless (string-match-p (regexp-quote "/path/to/model") block)
        (error "The emacs-setup block must name /path/to/model"))
      (unless (string-match-p (regexp-quote "(:model \"/path/to/model\")") block)
        (error "The emacs-setup block must pass (:model \"/path/to/model\") as the mercury options"))
      (string-replace "(:model \"/path/to/model\")"
                      (format "(:model %S :minConfidence 0)" mercury-test-model) block))))

(defun mercury-test-wait (what predicate seconds)
  "Let processes and timers run until PREDICATE returns non-nil; fail naming WHAT after SECONDS."
  (let ((deadline (+ (float-time) seconds))
        value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) deadline))
      (accept-process-output nil 0.05)
      (sit-for 0.05))
    (or value (error "Timed out waiting for %s" what))))

(defmacro mercury-test (name &rest body)
  "Run BODY as the test NAME, printing PASS or FAIL."
  (declare (indent 1))
  `(condition-case err
       (progn ,@body
              (cl-incf mercury-test-passed)
              (princ (format "PASS %s\n" ,name)))
     (error (cl-incf mercury-test-failed)
            (princ (format "FAIL %s: %s\n" ,name (error-message-string err))))))

(defun mercury-test-workspace ()
  "The mercury workspace of the current buffer, once it is initialized."
  (cl-find-if (lambda (workspace)
                (and (eq (lsp--client-server-id (lsp--workspace-client workspace)) 'mercury)
                     (eq (lsp--workspace-status workspace) 'initialized)))
              (lsp-workspaces)))

(let* ((project (make-temp-file "mercury-emacs-" t))
       (file (expand-file-name "add.py" project))
       (cursor-line 3)
       (cursor-column 11)
       buffer)
  (with-temp-file file (insert mercury-test-source))
  (setq lsp-session-file (expand-file-name ".lsp-session" project)
        lsp-enable-file-watchers nil
        lsp-keep-workspace-alive nil
        lsp-restart 'ignore
        lsp-enable-snippet nil
        lsp-headerline-breadcrumb-enable nil
        lsp-modeline-code-actions-enable nil
        lsp-modeline-diagnostics-enable nil
        lsp-modeline-workspace-status-enable nil
        lsp-enable-on-type-formatting nil
        lsp-enable-indentation nil
        lsp-completion-provider :none
        ;; Python's own server is not installed here; mercury is the only client for the buffer.
        lsp-disabled-clients '(pyls pylsp mspyls pyright jedi semgrep-ls ruff-lsp))

  (mercury-test "the README setup starts mercury-lsp for a Python file"
    (eval (car (read-from-string (format "(progn %s)" (mercury-test-readme-setup)))) t)
    (require 'lsp-mode)
    (lsp-workspace-folders-add project)
    (setq buffer (find-file-noselect file))
    (with-current-buffer buffer
      (python-mode)
      ;; lsp-deferred waits for the buffer to be shown in a window, which batch Emacs never does.
      (when lsp--buffer-deferred (lsp))
      (mercury-test-wait "the mercury workspace" #'mercury-test-workspace 60)))

  (mercury-test "completion-at-point offers the infill and its exit function inserts the server's text"
    (with-current-buffer buffer
      (goto-char (point-min))
      (forward-line (1- cursor-line))
      (move-to-column cursor-column)
      (let* ((start (point))
             (expected nil)
             (candidate
              (mercury-test-wait
               "a completion (the model is loading)"
               (lambda ()
                 (let* ((capf (lsp-completion-at-point))
                        (table (nth 2 capf))
                        (first (car (all-completions "" table))))
                   (when first
                     (let* ((item (get-text-property 0 'lsp-completion-item first))
                            (edit (lsp:completion-item-text-edit? item)))
                       (setq expected (if edit (lsp:text-edit-new-text edit) (lsp:completion-item-label item))))
                     (list first (plist-get (nthcdr 3 capf) :exit-function)))))
               180)))
        (when (string-blank-p expected)
          (error "The server's completion is blank"))
        ;; What a completion UI does on accept: insert the candidate, then call the exit function.
        (insert (car candidate))
        (funcall (cadr candidate) (car candidate) 'finished)
        (let ((want (concat (substring mercury-test-source 0 (1- start)) expected
                            (substring mercury-test-source (1- start))))
              (got (buffer-substring-no-properties (point-min) (point-max))))
          (unless (equal want got)
            (error "Buffer is %S, expected %S" got want))))))

  (when buffer
    (with-current-buffer buffer
      (set-buffer-modified-p nil)
      (ignore-errors (lsp-workspace-shutdown (mercury-test-workspace)))))
  (princ (format "%d passed, %d failed\n" mercury-test-passed mercury-test-failed))
  (kill-emacs (if (zerop mercury-test-failed) 0 1)))

;;; lsp-mode-test.el ends here
