# NixOS module for `sendan-agent nix`: keeps this node on the NixOS system the Sendan control plane decides for it
# (the spec, an operator, a pool rollout) — fetch, activate, health-gate, confirm or roll back.
#
#   services.sendan.nix-agent = {
#     enable = true;
#     settings.server = "http://10.20.1.11:7770";
#     tokenFile = "/var/lib/sendan-secrets/node-token";      # from `sendan node token <node>`
#     settings.health.units = [ "sshd.service" ];
#   };
#
# `settings` is the agent's config file (the keys are the `sendan-agent nix` flags, kebab-case, plus `health` and
# the timeouts); it is rendered to JSON and passed as `sendan-agent nix --config <file>`. The token never enters the
# Nix store: it is handed to the unit with systemd's LoadCredential.
#
# The agent runs as root without sandboxing: it sets the system profile and runs switch-to-configuration. A switch
# must survive the agent's own restart (a new system usually restarts this very unit): the switch runs in its own
# transient unit (`systemd-run --wait`, as nixos-rebuild does), and `KillMode = "process"` (as cachix-agent does)
# stops only the agent's main process, never what it started. The restarted agent resumes the activation from its
# state directory.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.sendan.nix-agent;
  format = pkgs.formats.json { };

  unit = "sendan-nix-agent";
  credential = name: "/run/credentials/${unit}.service/${name}";

  settings = cfg.settings // lib.optionalAttrs (cfg.tokenFile != null) { token-file = credential "token"; };

  configFile = format.generate "sendan-nix-agent.json" settings;
in
{
  options.services.sendan.nix-agent = {
    enable = lib.mkEnableOption "the Sendan nix-agent, which keeps this node on the NixOS system Sendan decides for it";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The Sendan package; it must provide `bin/sendan-agent`.";
    };

    settings = lib.mkOption {
      description = ''
        The agent's configuration, rendered to JSON and passed as `sendan-agent nix --config`. Keys are the
        `sendan-agent nix` flags (kebab-case), `health` (`units`, `http` = [ { url; status; } ], `commands`) and the
        timeouts (`poll-interval-secs`, `switch-timeout-secs`, `health-timeout-secs`, `confirm-timeout-secs`, …);
        unknown keys are rejected by the agent. Do not put the token here: use `tokenFile`.
      '';
      default = { };
      type = lib.types.submodule {
        freeformType = format.type;
        options = {
          server = lib.mkOption {
            type = lib.types.str;
            example = "http://10.20.1.11:7770";
            description = "Any Sendan member's API address.";
          };
          node = lib.mkOption {
            type = lib.types.str;
            default = config.networking.hostName;
            defaultText = lib.literalExpression "config.networking.hostName";
            description = "This node's id in the cluster spec.";
          };
          state-dir = lib.mkOption {
            type = lib.types.str;
            default = "/var/lib/sendan-agent";
            description = "Where the agent keeps the activation under way; must be below /var/lib (it is the unit's StateDirectory).";
          };
          systemd-run = lib.mkOption {
            type = lib.types.enum [
              "auto"
              "always"
              "never"
            ];
            default = "auto";
            description = "Run switch-to-configuration in a transient unit with `systemd-run --wait` (auto: when systemd runs the machine).";
          };
        };
      };
    };

    tokenFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/sendan-secrets/node-token";
      description = ''
        A file holding this node's token (`sendan node token <node>`). When null the agent reads
        `<state-dir>/token`, where the installer leaves it.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/var/lib/" cfg.settings.state-dir;
        message = "services.sendan.nix-agent.settings.state-dir must be below /var/lib (it is the unit's StateDirectory)";
      }
    ];

    systemd.services.${unit} = {
      description = "Sendan nix-agent: keeps this node on its decided NixOS system";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      restartTriggers = [ configFile ];
      # nix-store, nix-env and nix for fetching and the profile; systemd-run and systemctl for the switch and units.
      path = [
        config.nix.package
        config.systemd.package
      ];

      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "sendan-agent"} nix --config ${configFile}";
        Restart = "always";
        RestartSec = "5s";
        # Stop only the agent, never the switch it started: the restarted agent resumes the activation.
        KillMode = "process";
        StateDirectory = lib.removePrefix "/var/lib/" cfg.settings.state-dir;
        StateDirectoryMode = "0700";
        LoadCredential = lib.optional (cfg.tokenFile != null) "token:${cfg.tokenFile}";
        UMask = "0077";
      };
    };
  };
}
