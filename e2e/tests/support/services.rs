//! Throw-away servers run by the e2e/ helper scripts, each with a state dir of
//! its own (a temp dir), stopped and deleted on Drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{e2e_script, parse_exports};

/// One instance of an `e2e/<script> up|down --state DIR` helper.
struct ScriptService {
    script: PathBuf,
    // Kept for its lifetime: the state dir lives inside it.
    _tmp: tempfile::TempDir,
    state: PathBuf,
}

impl ScriptService {
    fn up(script: &str) -> (Self, BTreeMap<String, String>) {
        Self::up_with(script, &[])
    }

    /// `up` with extra arguments for the script.
    fn up_with(script: &str, args: &[&str]) -> (Self, BTreeMap<String, String>) {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("dbclaim-e2e-{script}-"))
            .tempdir()
            .expect("cannot create a temp dir");
        let svc = Self {
            script: e2e_script(script),
            state: tmp.path().join("state"),
            _tmp: tmp,
        };
        let stdout = svc.run_with("up", args);
        let exports = parse_exports(&stdout);
        (svc, exports)
    }

    /// Runs `<script> ACTION --state DIR`; panics with its output on failure.
    fn run(&self, action: &str) -> String {
        self.run_with(action, &[])
    }

    fn run_with(&self, action: &str, args: &[&str]) -> String {
        let out = Command::new(&self.script)
            .arg(action)
            .args(args)
            .arg("--state")
            .arg(&self.state)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "{} {action} failed ({}):\n{}{}",
            self.script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state_dir(&self) -> &Path {
        &self.state
    }
}

impl Drop for ScriptService {
    fn drop(&mut self) {
        // Not `run`: no panic while a failing test is already unwinding.
        match Command::new(&self.script)
            .arg("down")
            .arg("--state")
            .arg(&self.state)
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: {} down failed: {}",
                self.script.display(),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("warning: cannot run {} down: {e}", self.script.display()),
        }
    }
}

fn required(exports: &BTreeMap<String, String>, key: &str) -> String {
    exports
        .get(key)
        .unwrap_or_else(|| panic!("helper printed no `export {key}=...`: {exports:?}"))
        .clone()
}

/// A PostgreSQL server on 127.0.0.1 (see e2e/postgres). `admin_user` has
/// LOGIN CREATEROLE CREATEDB and is no superuser, like a managed database's
/// master user. Stopped and deleted on Drop.
pub struct Postgres {
    svc: ScriptService,
    pub host: String,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: String,
    /// Directory of the server's unix socket (the `postgres` superuser can
    /// connect there without a password).
    pub socket_dir: String,
    /// With `start_with_tls`: the CA file of the server's certificate.
    pub ca_file: Option<String>,
}

impl Postgres {
    pub fn start() -> Self {
        Self::from_script(&[])
    }

    /// A server that takes only TLS over TCP, its certificate (localhost,
    /// 127.0.0.1) from the private CA in `ca_file`.
    pub fn start_with_tls() -> Self {
        let pg = Self::from_script(&["--ssl"]);
        assert!(
            pg.ca_file.is_some(),
            "e2e/postgres --ssl exported no CA file"
        );
        pg
    }

    fn from_script(args: &[&str]) -> Self {
        let (svc, env) = ScriptService::up_with("postgres", args);
        Self {
            ca_file: env.get("DBCLAIM_PG_CA_FILE").cloned(),
            host: required(&env, "PGHOST"),
            port: required(&env, "PGPORT")
                .parse()
                .expect("PGPORT is a port number"),
            admin_user: required(&env, "DBCLAIM_PG_ADMIN_USER"),
            admin_password: required(&env, "DBCLAIM_PG_ADMIN_PASSWORD"),
            socket_dir: required(&env, "DBCLAIM_PG_SOCKET_DIR"),
            svc,
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping
    /// its data and port for `start`.
    pub fn stop(&self) {
        self.svc.run("stop");
    }

    /// Starts the stopped server again, same data, same port. (Not `start`:
    /// that name is the constructor.)
    pub fn start_again(&self) {
        self.svc.run("start");
    }

    /// `stop` then `start_again`.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// `host=... port=... user=... password=... dbname=postgres`, for tokio-postgres.
    pub fn admin_conn_string(&self) -> String {
        format!(
            "host={} port={} user={} password={} dbname=postgres",
            self.host, self.port, self.admin_user, self.admin_password
        )
    }

    pub fn state_dir(&self) -> &Path {
        self.svc.state_dir()
    }
}

/// moto's AWS emulator on 127.0.0.1 (see e2e/moto). Stopped on Drop.
pub struct Moto {
    _svc: ScriptService,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// The DB subnet group the shipped AWS compositions place instances in
/// (`compositions/aws-rds-*.yaml`, a platform constant).
pub const PLATFORM_SUBNET_GROUP: &str = "dbclaim-private";

impl Moto {
    /// Starts moto with the platform's network in place: the DB subnet
    /// group the shipped compositions name, over the default VPC's subnets.
    pub fn start() -> Self {
        let (svc, env) = ScriptService::up("moto");
        let moto = Self {
            endpoint: required(&env, "DBCLAIM_MOTO_ENDPOINT"),
            _svc: svc,
        };
        moto.create_subnet_group(PLATFORM_SUBNET_GROUP);
        moto
    }

    /// A call to moto's query (EC2, RDS) or JSON (KMS: `target` names the
    /// operation) API by plain HTTP: moto routes by the credential scope and
    /// does not check signatures. Panics on an error answer.
    pub fn call(&self, service: &str, body: &str, target: Option<&str>) -> String {
        let auth = format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIAE2EDBCLAIMSETUP01/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
        );
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail-with-body", "-X", "POST", &self.endpoint])
            .args(["-H", &auth, "--data", body]);
        if let Some(t) = target {
            cmd.args(["-H", &format!("X-Amz-Target: {t}")])
                .args(["-H", "Content-Type: application/x-amz-json-1.1"]);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "moto {service} {body}: {text}");
        text
    }

    /// The default VPC's id and its subnets.
    pub fn default_vpc(&self) -> (String, Vec<String>) {
        const EC2: &str = "Version=2016-11-15";
        let vpcs = self.call(
            "ec2",
            &format!("Action=DescribeVpcs&{EC2}&Filter.1.Name=isDefault&Filter.1.Value.1=true"),
            None,
        );
        let vpc = xml_values(&vpcs, "vpcId")
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no default VPC: {vpcs}"));
        let subnets = self.call(
            "ec2",
            &format!("Action=DescribeSubnets&{EC2}&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc}"),
            None,
        );
        let ids = xml_values(&subnets, "subnetId");
        assert!(ids.len() >= 2, "subnets of {vpc}: {subnets}");
        (vpc, ids)
    }

    /// A DB subnet group over the default VPC's subnets.
    pub fn create_subnet_group(&self, name: &str) {
        let (_, subnets) = self.default_vpc();
        let mut body = format!(
            "Action=CreateDBSubnetGroup&Version=2014-10-31&DBSubnetGroupName={name}&DBSubnetGroupDescription=private"
        );
        for (i, id) in subnets.iter().enumerate() {
            body.push_str(&format!("&SubnetIds.SubnetIdentifier.{}={id}", i + 1));
        }
        self.call("rds", &body, None);
    }
}

/// Every `<tag>value</tag>` of an XML text.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next().map(str::to_string))
        .collect()
}
