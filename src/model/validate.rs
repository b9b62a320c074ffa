//! The seeds' validation rules.

use super::*;

impl Validate for VpcChannel {
    const API: Api = Api::Roma;
    fn validate(&self) -> ValidationErrors {
        let c = Collector::new(Self::API);
        c.finish()
    }
}

impl Validate for MemberGroupsBody {
    const API: Api = Api::Roma;
    fn validate(&self) -> ValidationErrors {
        let c = Collector::new(Self::API);
        c.finish()
    }
}

impl Validate for BackendServersBody {
    const API: Api = Api::Zstack;
    fn validate(&self) -> ValidationErrors {
        let c = Collector::new(Self::API);
        c.finish()
    }
}

impl Validate for EndpointGroupBody {
    const API: Api = Api::Ga;
    fn validate(&self) -> ValidationErrors {
        let c = Collector::new(Self::API);
        c.finish()
    }
}

impl Validate for ProtectionGroupBody {
    const API: Api = Api::Sdrs;
    fn validate(&self) -> ValidationErrors {
        let c = Collector::new(Self::API);
        c.finish()
    }
}
