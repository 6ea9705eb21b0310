// Frozen: deleted next quarter, not worth migrating.
import { shallow } from 'enzyme';
